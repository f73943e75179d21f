"""Predictions of a model written as CSV, JSON Lines or NPZ (``trainctl predict -o``),
atomically (no partial file on an error).

Classifiers (``probabilities`` given, [N, K]) get per row: ``input`` (where the row came
from), ``class`` (the most probable class's name), ``class_index``, the probability of
every class, and the ``top_k`` most probable classes with their probabilities:

- CSV: ``input,class,class_index,p_<class>...,top1_class,top1_probability,...``;
- JSONL: ``{"input", "class", "class_index", "probabilities": {class: p}, "top_k":
  [{"class", "probability"}]}``;
- NPZ: ``input`` str [N], ``class`` str [N], ``class_index`` int64 [N],
  ``probabilities`` float64 [N, K], ``class_names`` str [K], ``top_k_index`` int64 [N, k],
  ``top_k_probability`` float64 [N, k] (no object arrays: ``np.load`` needs no pickle).

Regression (``values`` [N, ...]) gets ``input`` and ``value`` (CSV: ``value`` for one
output, ``value_0``... for several; JSONL: a number or a list; NPZ: ``values`` float32).
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainctl.errors import OutputError
from trainctl.io.atomic import write_atomically

FORMATS = (".csv", ".jsonl", ".npz")


@dataclass
class Predictions:
    """``ids`` [N]; classifiers: ``probabilities`` float64 [N, K] and ``class_names`` [K];
    regression: ``values`` float32 [N, ...]; ``top_k``: how many classes each row lists."""

    ids: list[str]
    probabilities: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    values: np.ndarray | None = None
    top_k: int = 1

    @property
    def class_index(self) -> np.ndarray:
        """The most probable class of each row, int64 [N] (the first on ties)."""
        return np.argmax(self.probabilities, axis=1).astype(np.int64)

    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """``(index, probability)`` of the ``top_k`` most probable classes, int64 and
        float64 [N, k], most probable first (ties: lower index first)."""
        k = max(1, min(self.top_k, self.probabilities.shape[1]))
        index = np.argsort(-self.probabilities, axis=1, kind="stable")[:, :k]
        return index.astype(np.int64), np.take_along_axis(self.probabilities, index, axis=1)


def write_predictions(path: str | os.PathLike, preds: Predictions) -> Path:
    """Write ``preds`` to ``path`` in the format its suffix names (:data:`FORMATS`).
    Raises OutputError for another suffix or a file that cannot be written."""
    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".csv": _csv, ".jsonl": _jsonl, ".npz": _npz}
    if suffix not in writers:
        raise OutputError(f"{path}: unknown output format {suffix!r}; use {', '.join(FORMATS)}")
    return write_atomically(path, lambda tmp: writers[suffix](tmp, preds))


def _names(preds: Predictions) -> list[str]:
    return list(preds.class_names or [str(i) for i in range(preds.probabilities.shape[1])])


def _value_columns(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    flat = values.reshape(len(values), -1)
    return (["value"] if flat.shape[1] == 1 else [f"value_{j}" for j in range(flat.shape[1])]), flat


def _csv(tmp: Path, preds: Predictions) -> None:
    # lists of Python floats: the csv module writes each as repr (shortest round trip)
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        if preds.probabilities is None:
            header, flat = _value_columns(preds.values)
            out.writerow(["input", *header])
            out.writerows([i, *row] for i, row in zip(preds.ids, flat.astype(np.float64).tolist()))
            return
        names = _names(preds)
        index, prob = preds.top()
        k = index.shape[1]
        out.writerow(["input", "class", "class_index", *(f"p_{n}" for n in names),
                      *(c for j in range(1, k + 1) for c in (f"top{j}_class", f"top{j}_probability"))])
        out.writerows([i, names[best], best, *p, *(c for t in zip([names[j] for j in top], tp) for c in t)]
                      for i, best, p, top, tp in zip(preds.ids, preds.class_index.tolist(),
                                                     preds.probabilities.tolist(), index.tolist(),
                                                     prob.tolist()))


def _number(v: float) -> float | None:
    return v if math.isfinite(v) else None  # NaN is not JSON


def _jsonl(tmp: Path, preds: Predictions) -> None:
    with open(tmp, "w", encoding="utf-8") as fh:
        if preds.probabilities is None:
            flat = preds.values.reshape(len(preds.values), -1).astype(np.float64).tolist()
            one = preds.values[0].size == 1 if len(preds.values) else True
            fh.writelines(json.dumps({"input": i, "value": _number(v[0]) if one else
                                      [_number(x) for x in v]}) + "\n"
                          for i, v in zip(preds.ids, flat))
            return
        names = _names(preds)
        index, prob = preds.top()
        fh.writelines(json.dumps({
            "input": i, "class": names[best], "class_index": best,
            "probabilities": {n: _number(x) for n, x in zip(names, p)},
            "top_k": [{"class": names[c], "probability": _number(x)} for c, x in zip(top, tp)]}) + "\n"
            for i, best, p, top, tp in zip(preds.ids, preds.class_index.tolist(),
                                           preds.probabilities.tolist(), index.tolist(), prob.tolist()))


def _npz(tmp: Path, preds: Predictions) -> None:
    arrays = {"input": np.array(preds.ids, dtype=str)}
    if preds.probabilities is None:
        arrays["values"] = np.asarray(preds.values, np.float32)
    else:
        names = np.array(_names(preds), dtype=str)
        index, prob = preds.top()
        arrays.update({"class": names[preds.class_index], "class_index": preds.class_index,
                       "probabilities": preds.probabilities, "class_names": names,
                       "top_k_index": index, "top_k_probability": prob})
    with open(tmp, "wb") as fh:  # a file object: np.savez would add .npz to a name
        np.savez(fh, **arrays)


__all__ = ["Predictions", "write_predictions", "FORMATS", "OutputError"]
