"""Resuming a run: pick the newest valid checkpoint, check the spec against it, restore.

:func:`plan_resume` verifies the checkpoints of a run directory newest first (a corrupt one
is reported and skipped), then compares the spec it was saved with to the spec given now:

- changes that break the saved state or the data position refuse the resume (model,
  optimizer type, loss, data, seed, and anything not listed below);
- optimizer hyperparameters (learning rate, betas, ...) and the schedule: refused unless
  ``apply_optimizer_changes`` (``--apply-optimizer-changes``) says to apply them; without
  it the checkpoint's values would silently win, so trainctl does neither silently;
- safe changes (name, device, metrics, epochs, eval batch size, the checkpoint section)
  are allowed and listed.

:func:`apply_resume` then loads the checkpoint into a :class:`Trainer`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainctl.errors import CheckpointError
from trainctl.io import CheckpointStore, load_checkpoint
from trainctl.io.runs import flatten
from trainctl.io.store import Entry
from trainctl.train import state as train_state
from trainctl.train.setup import Setup

SAFE = ("name", "device", "metrics", "train.epochs", "train.steps", "train.eval_batch_size",
        "train.eval_every_n_epochs", "train.eval_every_n_steps", "train.log_every_n_steps",
        "checkpoint", "logging", "callbacks", "distribute")
NEEDS_FLAG = ("optimizer", "schedule")
BREAKING = ("optimizer.type",)  # overrides NEEDS_FLAG; everything unlisted breaks too
MISSING = "(absent)"


@dataclass
class Change:
    """One difference between the checkpoint's spec and the spec given now."""

    path: str
    old: Any
    new: Any
    kind: str  # "safe", "needs_flag" or "breaking"

    def __str__(self) -> str:
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    return value if value is MISSING else repr(value)


def _within(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[")
               for p in prefixes)


def classify(path: str) -> str:
    if _within(path, BREAKING):
        return "breaking"
    if _within(path, NEEDS_FLAG):
        return "needs_flag"
    return "safe" if _within(path, SAFE) else "breaking"


def diff_specs(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every leaf that differs between two resolved specs, classified (see module doc)."""
    a, b = flatten(old), flatten(new)
    changes = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, MISSING), b.get(path, MISSING)
        if va is MISSING and vb is None:
            continue  # a key added to the format since, null by default
        if va != vb and not (isinstance(va, float) and isinstance(vb, float) and va != va and vb != vb):
            changes.append(Change(path, va, vb, classify(path)))
    return changes


@dataclass
class ResumePlan:
    """What :func:`plan_resume` decided. ``entry`` is None when the run has no checkpoint
    yet (it starts again from step 0). ``skipped`` are newer checkpoints that failed
    verification; ``changes`` the spec differences (none breaking)."""

    run_dir: Path
    entry: Entry | None
    skipped: list[Entry] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    apply_optimizer_changes: bool = False
    weights: dict | None = None
    optimizer: dict | None = None
    state: dict[str, Any] = field(default_factory=dict)
    complete: bool = False  # the checkpoint already finished every epoch the spec asks for


def plan_resume(run_dir: str | os.PathLike, setup: Setup, *,
                apply_optimizer_changes: bool = False) -> ResumePlan:
    """Choose the checkpoint of ``run_dir`` to continue ``setup`` from and check the spec.

    Raises CheckpointError when every checkpoint is corrupt, when the spec changed in a way
    that breaks the saved state (the message lists each difference), when optimizer
    hyperparameters changed without ``apply_optimizer_changes``, or when the spec now
    trains fewer epochs than the checkpoint has done, or when it was written by another
    number of data-parallel processes than ``setup.world_size``.
    """
    run_dir = Path(run_dir)
    store = CheckpointStore(run_dir / "checkpoints")
    entry, skipped = store.newest_valid()
    if entry is None:
        if skipped:
            raise CheckpointError(
                f"no valid checkpoint in {str(run_dir)!r}; every one is corrupt:\n" +
                "\n".join(f"  {e.name}: {'; '.join(e.problems)}" for e in skipped))
        return ResumePlan(run_dir, None)
    weights, opt, state = load_checkpoint(entry.path, verify=False)  # verified just now
    saved_world = int(state.get("world_size", 1))
    if saved_world != setup.world_size:
        raise CheckpointError(
            f"cannot resume {str(run_dir)!r}: its checkpoint {entry.name} was written by "
            f"{saved_world} data-parallel process(es), this run has {setup.world_size}; "
            f"resume with --nproc {saved_world} (each process's data shard and position "
            f"depend on the number of processes)")
    changes = diff_specs(state.get("spec") or {}, setup.resolved) if state.get("spec") else []
    breaking = [c for c in changes if c.kind == "breaking"]
    if breaking:
        raise CheckpointError(
            f"cannot resume {str(run_dir)!r}: the spec changed in ways that break the saved "
            f"state ({entry.name}):\n" + "\n".join(f"  {c}" for c in breaking) +
            "\nrestore these values, or start a new run (--init-from "
            f"{entry.path} loads the weights only)")
    flagged = [c for c in changes if c.kind == "needs_flag"]
    if flagged and not apply_optimizer_changes:
        raise CheckpointError(
            "the optimizer or schedule changed since the checkpoint:\n" +
            "\n".join(f"  {c}" for c in flagged) +
            "\npass --apply-optimizer-changes to continue with the spec's values, or restore "
            "the checkpoint's values in the spec")
    epochs, steps = setup.spec.train.epochs, setup.spec.train.steps
    done, done_steps = int(state.get("epoch", 0)), int(state.get("step", 0))
    if epochs is not None and done > epochs:
        raise CheckpointError(f"the checkpoint {entry.name} has completed {done} epochs, but "
                              f"the spec trains {epochs}; raise train.epochs (--epochs)")
    if steps is not None and done_steps > steps:
        raise CheckpointError(f"the checkpoint {entry.name} has done {done_steps} steps, but "
                              f"the spec trains {steps}; raise train.steps")
    complete = (done == epochs and not int((state.get("data") or {}).get("batch", 0))
                if epochs is not None else done_steps == steps)
    complete = complete or (state.get("kind") == "final" and bool(state.get("stopped_early")))
    return ResumePlan(run_dir, entry, skipped, changes, apply_optimizer_changes, weights, opt,
                      state, complete)


def apply_resume(trainer, plan: ResumePlan) -> list[str]:
    """Load ``plan``'s checkpoint into ``trainer`` (whose run directory is the plan's);
    returns warnings. Leftovers of interrupted checkpoint writes are removed."""
    if trainer.checkpointer is not None:
        trainer.checkpointer.store.clean_temporaries()
    if plan.entry is None:
        if trainer.run_dir is not None:
            trainer.run_dir.truncate_metrics(0)
        return []
    meta = plan.state.get("optimizer")
    if plan.apply_optimizer_changes and meta is not None:
        opt = trainer.setup.optimizer
        meta = {**meta, "config": opt.get_config(), "learning_rate": opt.config.learning_rate}
    return train_state.restore(trainer, plan.weights, plan.optimizer, plan.state, meta)


def find_run(spec_name: str, root: str | os.PathLike = "runs") -> Path | None:
    """The most recently written run directory under ``root`` whose spec has ``spec_name``
    (for ``--resume auto``), or None."""
    import yaml

    root = Path(root)
    if not root.is_dir():
        return None
    found = []
    for path in root.iterdir():
        spec_file = path / "spec.yaml"
        if not spec_file.is_file():
            continue
        try:
            name = (yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}).get("name")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if name == spec_name:
            found.append((_last_write(path), path.name, path))
    return max(found)[2] if found else None


def _last_write(run: Path) -> float:
    files = [run / "metrics.jsonl", run / "checkpoints"]
    return max((f.stat().st_mtime for f in files if f.exists()), default=run.stat().st_mtime)
