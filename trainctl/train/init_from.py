"""``--init-from CKPT``: start a new run from another run's weights (fine-tuning, as
Caffe's ``-weights``). Weights only: the optimizer, counters and generators start fresh.

Tensors are matched by variable name (``<layer name>/<weight>``); each is reported as
loaded, missing from the checkpoint, of another shape (left as initialised), unused (in
the checkpoint only) or filtered out. A name filter (``fnmatch`` globs such as
``dense/*``) selects a subset.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainctl.autodiff.ops.core import fmt_shape
from trainctl.errors import CheckpointError
from trainctl.graph import Model
from trainctl.io import load_checkpoint
from trainctl.io.checkpoint import load_tensors, refuse_pickle

LOADED, MISSING, SHAPE, UNUSED, FILTERED = "loaded", "missing", "other shape", "unused", "filtered out"


@dataclass
class InitRow:
    name: str
    status: str
    model_shape: tuple[int, ...] | None = None
    checkpoint_shape: tuple[int, ...] | None = None
    note: str = ""

    def __str__(self) -> str:
        shapes = {LOADED: fmt_shape(self.model_shape or ()),
                  SHAPE: f"checkpoint {fmt_shape(self.checkpoint_shape or ())}, model "
                         f"{fmt_shape(self.model_shape or ())}; kept as initialised",
                  MISSING: "not in the checkpoint; kept as initialised",
                  UNUSED: f"{fmt_shape(self.checkpoint_shape or ())} not in the model",
                  FILTERED: "not selected by the filter"}[self.status]
        return f"{self.status:<12} {self.name}  {shapes}{self.note}"


@dataclass
class InitReport:
    source: Path
    rows: list[InitRow] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)


def read_weights(path: str | os.PathLike) -> tuple[Path, dict[str, torch.Tensor]]:
    """Weights from a checkpoint, a run directory or a bare ``.safetensors`` file (verified
    against the MANIFEST when there is one). Raises CheckpointError (pickles refused)."""
    path = Path(path)
    refuse_pickle(path)
    if path.is_file() and path.suffix == ".safetensors":
        return path, load_tensors(path)
    weights, _, _ = load_checkpoint(path)
    return path, weights


def init_from(model: Model, path: str | os.PathLike, patterns: list[str] | tuple = ()) -> InitReport:
    """Copy the weights of ``path`` that fit into ``model`` (see the module docstring).

    Raises CheckpointError when a filter pattern selects nothing or no tensor fits.
    """
    source, tensors = read_weights(path)
    names = [v.name for v in model.variables] + [n for n in tensors if n not in
                                                 {v.name for v in model.variables}]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise CheckpointError(f"--init-filter {pattern!r} matches no tensor; names are: "
                                  f"{', '.join(names)}")
    report = InitReport(source)
    selected = [n for n in names if not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    to_copy = []
    for v in model.variables:
        t = tensors.get(v.name)
        if v.name not in selected:
            report.rows.append(InitRow(v.name, FILTERED, v.shape))
        elif t is None:
            report.rows.append(InitRow(v.name, MISSING, v.shape))
        elif tuple(t.shape) != v.shape:
            report.rows.append(InitRow(v.name, SHAPE, v.shape, tuple(t.shape)))
        else:
            note = "" if t.dtype == v.dtype else f" (cast from {str(t.dtype).replace('torch.', '')})"
            report.rows.append(InitRow(v.name, LOADED, v.shape, tuple(t.shape), note))
            to_copy.append((v, t))
    for name, t in tensors.items():
        if name in selected and name not in {v.name for v in model.variables}:
            report.rows.append(InitRow(name, UNUSED, None, tuple(t.shape)))
    if not to_copy:
        raise CheckpointError(f"no tensor of {str(source)!r} fits the model:\n" +
                              "\n".join(f"  {row}" for row in report.rows))
    with torch.no_grad():
        for v, t in to_copy:
            v.data.copy_(t.to(device=v.device, dtype=v.dtype))
    return report
