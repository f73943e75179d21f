"""When a run writes checkpoints, which it keeps, and which is the best (the spec's
``checkpoint:`` section; trainctl.spec.checkpointing)."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainctl.errors import SpecError, SpecErrors
from trainctl.io import CheckpointStore, RunDir, save_checkpoint, step_name
from trainctl.io.checkpoint import write_pointer
from trainctl.spec.kinds.callbacks import monitor_mode
from trainctl.train import state as train_state

if TYPE_CHECKING:
    from trainctl.train.loop import Trainer


def record_keys(setup) -> list[str]:
    """The values an epoch record of ``setup`` holds that ``monitor`` may name."""
    names = [key for m in setup.metrics for key in m.record_keys()]
    keys = ["loss", *names]
    if setup.splits.sizes.get("validation", 0) > 0:
        keys += ["val_loss", *(f"val_{n}" for n in names)]
    return keys + ["learning_rate"]


def check_monitor(setup) -> None:
    """Raise SpecErrors (located at ``checkpoint.monitor``) if the spec monitors a value
    the epoch records will not have; called before training starts."""
    monitor = setup.spec.checkpoint.monitor
    keys = record_keys(setup)
    if monitor is None or monitor in keys:
        return
    close = difflib.get_close_matches(monitor, keys, n=2)
    hint = ("did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
    message = f"{monitor!r} is not a value of the epoch records; {hint}known: {', '.join(keys)}"
    doc = setup.spec.doc
    error = (doc.error(("checkpoint", "monitor"), message) if doc is not None
             else SpecError(message, key="checkpoint.monitor"))
    raise SpecErrors([error])


class Checkpointer:
    """Saves ``trainer`` into ``run_dir/checkpoints`` as its spec's ``checkpoint:`` says.

    Periodic checkpoints are named by step (``step-000000120``); at the end of training a
    ``final`` one is written. Keeps the best value of ``monitor`` (its state is saved in
    every checkpoint under ``callbacks.checkpoint_best`` so a resumed run compares alike).
    """

    state_key = "checkpoint_best"

    def __init__(self, trainer: "Trainer", run_dir: RunDir):
        check_monitor(trainer.setup)
        self.config = trainer.setup.spec.checkpoint
        self.store = CheckpointStore(run_dir.checkpoints)
        self.monitor = self.config.monitor
        self.mode = monitor_mode(self.monitor, self.config.mode) if self.monitor else None
        self.best: float | None = None
        self.best_name: str | None = None
        self.last_saved: Path | None = None
        self.trainer = trainer

    # ---- policy ----------------------------------------------------------------------
    def step_due(self, step: int) -> bool:
        n = self.config.every_n_steps
        return n is not None and step % n == 0

    def _improved(self, record: dict[str, Any]) -> bool:
        if not self.monitor:
            return False
        value = record.get(self.monitor)  # None: not evaluated at this record
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    # ---- writing ---------------------------------------------------------------------
    def save(self, kind: str, best: bool = False) -> Path:
        """Write a checkpoint of the trainer now (between steps), once the non-finite guard
        has checked the steps before it. Raises CheckpointError (NonFiniteError)."""
        self.trainer.settle()
        weights, optimizer, state = train_state.capture(self.trainer, kind)
        name = step_name(self.trainer.step)
        path = self.store.save(name, weights, optimizer, state, best=best,
                               keep_last=self.config.keep_last)
        self.last_saved = path
        return path

    def at_epoch_end(self, record: dict[str, Any], requested: bool) -> Path | None:
        """Save if the spec asks for it at this point, if a snapshot was ``requested``, or if
        the monitored value improved (then ``best`` points at it)."""
        due = self.config.every_epoch or self.step_due(self.trainer.step)
        return self._save_if(record, due, requested, "epoch")

    def at_step(self, record: dict[str, Any] | None, requested: bool,
                requested_kind: str = "signal") -> Path | None:
        """Between two steps of an epoch: save if a step checkpoint is due, a snapshot was
        ``requested`` (kind ``requested_kind``), or the monitored value of an evaluation
        step's ``record`` improved (then ``best`` points at it)."""
        kind = requested_kind if requested else "step"
        return self._save_if(record or {}, self.step_due(self.trainer.step), requested, kind)

    def _save_if(self, record: dict[str, Any], due: bool, requested: bool,
                 kind: str) -> Path | None:
        improved = self._improved(record)
        if not (improved or due or requested):
            return None
        previous = (self.best, self.best_name)
        if improved:
            self.best, self.best_name = float(record[self.monitor]), step_name(self.trainer.step)
        try:
            return self.save(kind, best=improved)
        except BaseException:
            self.best, self.best_name = previous
            raise

    def save_final(self) -> Path:
        """``checkpoints/final`` (complete training) and ``latest`` pointing at it."""
        self.trainer.settle()
        weights, optimizer, state = train_state.capture(self.trainer, "final")
        path = save_checkpoint(self.store.root / "final", weights, optimizer, state)
        write_pointer(self.store.root / "latest", "final")
        self.last_saved = path
        return path

    # ---- resumable state ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "value": self.best,
                "checkpoint": self.best_name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor") == self.monitor:
            self.best, self.best_name = state.get("value"), state.get("checkpoint")
