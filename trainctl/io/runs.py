"""Reading run directories back: summaries for ``trainctl runs list``, side-by-side final
values for ``trainctl runs compare``, the records ``trainctl plot`` draws.

A run directory is a folder holding ``spec.yaml`` (see trainctl.io.rundir); its records
come from metrics.jsonl, its status and times from run.json (a run without run.json, from
before it existed, is ``completed`` when it has a final checkpoint, else ``unknown``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainctl.errors import TrainctlError
from trainctl.io.records import read_run, records_of
from trainctl.io.rundir import CHECKPOINTS, METRICS_FILE, SPEC_FILE
from trainctl.spec.kinds.metrics import direction_of, directions

NOT_VALUES = ("kind", "epoch", "step", "seconds", "input_wait", "learning_rate")


@dataclass
class RunSummary:
    """One run: ``path``, ``name``, ``status``, ``epochs`` and ``steps`` done, ``best``
    (key → ``{"value", "epoch"}``, for the loss and every metric: the validation values
    when the run has them, else the training values), ``final`` (the last epoch record),
    ``duration_seconds`` and ``start_time`` (None when unknown)."""

    path: str
    name: str
    status: str
    epochs: int
    steps: int
    best: dict[str, dict[str, Any]] = field(default_factory=dict)
    final: dict[str, Any] = field(default_factory=dict)
    duration_seconds: float | None = None
    start_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_run(path: str | os.PathLike) -> bool:
    return (Path(path) / SPEC_FILE).is_file()


def find_runs(root: str | os.PathLike) -> list[Path]:
    """``root`` itself if it is a run directory, else the run directories directly inside
    it, sorted by name. Raises TrainctlError when ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise TrainctlError(f"{str(root)!r} is not a folder")
    if is_run(root):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and is_run(p))


def read_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The resolved spec of the run at ``path`` as a dict (its spec.yaml)."""
    from trainctl.spec import load_doc

    return load_doc(Path(path) / SPEC_FILE).get(())


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of the run's metrics.jsonl (epoch and step records, in order)."""
    if not is_run(path):
        raise TrainctlError(f"{str(path)!r} is not a run directory (no {SPEC_FILE})")
    return list(records_of(Path(path) / METRICS_FILE))


def epoch_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind", "epoch") == "epoch" and "epoch" in r]


def value_keys(records: list[dict[str, Any]]) -> list[str]:
    """The keys of loss and metric values in ``records``, in order of first appearance."""
    keys: list[str] = []
    for r in records:
        keys += [k for k, v in r.items() if k not in NOT_VALUES and k not in keys
                 and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool)]
    return keys


def best_values(records: list[dict[str, Any]], table: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The best epoch of each value: validation keys when there are any, else training
    keys; the direction of each key from ``table`` (see
    :func:`trainctl.spec.kinds.metrics.directions`); keys of unknown direction skipped."""
    epochs = epoch_records(records)
    keys = value_keys(epochs)
    val = [k for k in keys if k.startswith("val_")]
    out = {}
    for key in val or keys:
        direction = direction_of(key, table)
        scored = [(r[key], r["epoch"]) for r in epochs if _finite(r.get(key))]
        if direction is None or not scored:
            continue
        value, epoch = (max if direction == "max" else min)(scored, key=lambda s: s[0])
        out[key] = {"value": value, "epoch": epoch}
    return out


def summarize(path: str | os.PathLike) -> RunSummary:
    """The :class:`RunSummary` of the run at ``path``."""
    path = Path(path)
    records = read_records(path)
    try:
        spec = read_spec(path)
    except TrainctlError:
        spec = {}
    info = read_run(path) or {}
    epochs = epoch_records(records)
    status = info.get("status") or ("completed" if (path / CHECKPOINTS / "final").is_dir()
                                    else "unknown")
    return RunSummary(
        path=str(path), name=str(info.get("name") or spec.get("name") or path.name),
        status=status, epochs=max((r["epoch"] for r in epochs), default=0),
        steps=max((r.get("step", 0) for r in records if isinstance(r.get("step"), int)), default=0),
        best=best_values(records, directions(spec.get("metrics"))),
        final=dict(epochs[-1]) if epochs else {},
        duration_seconds=info.get("duration_seconds"), start_time=info.get("start_time"))


@dataclass
class Comparison:
    """Two runs side by side: ``rows`` of ``(key, value in a, value in b)`` for every value
    of their last epoch records, and the spec differences ``changes`` (``(key path, value
    in a, value in b)``)."""

    a: RunSummary
    b: RunSummary
    rows: list[tuple[str, Any, Any]]
    changes: list[tuple[str, Any, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a.to_dict(), "b": self.b.to_dict(),
                "final": [{"key": k, "a": va, "b": vb} for k, va, vb in self.rows],
                "spec_changes": [{"key": k, "a": va, "b": vb} for k, va, vb in self.changes]}


MISSING = None


def compare(a: str | os.PathLike, b: str | os.PathLike) -> Comparison:
    """Compare the runs at ``a`` and ``b`` (TrainctlError when one is not a run)."""
    sa, sb = summarize(a), summarize(b)
    keys = value_keys([sa.final, sb.final])
    rows = [(k, sa.final.get(k), sb.final.get(k)) for k in ["epoch", "step", *keys]]
    flat_a, flat_b = flatten(read_spec(a)), flatten(read_spec(b))
    changes = [(k, flat_a.get(k, MISSING), flat_b.get(k, MISSING))
               for k in sorted(set(flat_a) | set(flat_b)) if flat_a.get(k) != flat_b.get(k)]
    return Comparison(sa, sb, rows, changes)


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Leaves of a spec by dotted key path, list items as ``[i]`` (``model.layers[0].units``);
    ``input_shape`` stays one value."""
    out = {} if out is None else out
    if isinstance(value, dict) and value:
        for key, item in value.items():
            flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and not prefix.endswith("input_shape"):
        for i, item in enumerate(value):
            flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
