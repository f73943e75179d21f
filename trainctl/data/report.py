"""What ``trainctl data inspect`` and ``trainctl data bench`` show, as plain data.

:func:`inspect_splits` describes the three splits (element spec, counts, class balance,
examples), :func:`image_grid` tiles images for a PNG, :func:`bench_stages` times every
stage of a pipeline. Printing is the CLI's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset
from trainctl.data.iterator import describe, walk
from trainctl.data.ordering import Batch, PaddedBatch
from trainctl.data.parallel import Map
from trainctl.data.splits import Splits
from trainctl.data.steps import Unbatch
from trainctl.data.structure import flatten
from trainctl.errors import DataError

SPLITS = ("train", "validation", "test")


def spec_text(spec: Any) -> str:
    """A TensorSpec structure as ``(float32 [None, 4], int64 [None])``."""
    if isinstance(spec, tuple):
        return "(" + ", ".join(spec_text(s) for s in spec) + ")"
    if isinstance(spec, dict):
        return "{" + ", ".join(f"{k}: {spec_text(s)}" for k, s in spec.items()) + "}"
    dims = ", ".join("None" if d is None else str(d) for d in spec.shape)
    return f"{np.dtype(spec.dtype).name} [{dims}]"


def _labels(batch: Any) -> np.ndarray | None:
    """Class indices of a (features, label) batch: integer labels, or one-hot argmax."""
    if not isinstance(batch, tuple) or len(batch) < 2:
        return None
    y = np.asarray(batch[1])
    if y.dtype.kind in "iub":
        return y.reshape(-1)
    if y.ndim >= 2:                        # one-hot or probabilities
        return y.reshape(-1, y.shape[-1]).argmax(axis=1)
    return None


def inspect_splits(splits: Splits, examples: int = 3) -> dict[str, Any]:
    """Per split: ``samples``, ``batches``, ``element_spec`` (text) and ``classes``
    (samples per class, from one pass over the split; None for regression; a split of
    unknown length, after a filter, has its samples and batches counted in that pass); plus the
    ``class_names`` and the first ``examples`` training samples (features summarised,
    label)."""
    out: dict[str, Any] = {"source": splits.source_name, "input_shape": list(splits.input_shape),
                           "num_classes": splits.num_classes,
                           "class_names": list(splits.class_names or []), "splits": {}}
    for name in SPLITS:
        ds: Dataset = getattr(splits, name)
        info: dict[str, Any] = {"samples": splits.sizes.get(name, 0), "batches": ds.cardinality()}
        info["element_spec"] = spec_text(ds.element_spec) if info["samples"] else None
        counts = np.zeros(splits.num_classes or 0, dtype=np.int64)
        unknown = info["batches"] < 0        # a filter (or interleave) before: count them
        rows = batches = 0
        for batch in ds.iterate(0) if info["samples"] and (splits.num_classes or unknown) else ():
            labels = _labels(batch)
            if labels is not None and splits.num_classes:
                counts += np.bincount(labels, minlength=len(counts))[:len(counts)]
            rows, batches = rows + len(flatten(batch)[-1]), batches + 1
        if unknown and info["samples"]:
            info["samples"], info["batches"] = rows, batches
        info["classes"] = counts.tolist() if splits.num_classes else None
        out["splits"][name] = info
    out["examples"] = [_example(x, y) for x, y in first_samples(splits.train, examples)]
    return out


def first_samples(ds: Dataset, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first ``count`` (features, label) samples of epoch 0 of a batched dataset."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for batch in ds.iterate(0):
        if not isinstance(batch, tuple) or len(batch) < 2:
            raise DataError("inspect: the pipeline does not give (features, label) pairs")
        x, y = np.asarray(batch[0]), np.asarray(batch[1])
        out += [(x[i], y[i]) for i in range(min(len(x), count - len(out)))]
        if len(out) >= count:
            break
    return out


def _example(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    flat = x.reshape(-1)
    values = flat[:6].tolist() if flat.dtype.kind != "U" else [str(v) for v in flat[:6]]
    return {"shape": list(x.shape), "dtype": x.dtype.name, "first_values": values,
            "more": int(flat.size > 6), "label": np.asarray(y).tolist()}


def image_grid(images: np.ndarray, columns: int = 8, gap: int = 1, min_size: int = 32) -> np.ndarray:
    """Images [N, H, W] or [N, H, W, 1|3] tiled ``columns`` per row with ``gap`` pixels
    between them: uint8 [rows*(h+gap)-gap, columns*(w+gap)-gap(, 3)], values scaled from
    the images' overall min..max to 0..255. Small images are enlarged by an integer factor
    ``k = max(1, min_size // max(H, W))`` (each pixel a k x k block): h, w = k*H, k*W.
    Raises DataError for other shapes."""
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[-1] == 3)) or len(x) == 0:
        raise DataError(f"inspect: features of shape {list(x.shape[1:])} are not images "
                        "([height, width] or [height, width, 1 or 3])")
    x = x.astype(np.float64)
    low, high = x.min(), x.max()
    x = np.round((x - low) / (high - low if high > low else 1) * 255).astype(np.uint8)
    k = max(1, min_size // max(x.shape[1:3]))
    x = x.repeat(k, axis=1).repeat(k, axis=2)
    n, h, w = x.shape[:3]
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = np.zeros((rows * (h + gap) - gap, columns * (w + gap) - gap, *x.shape[3:]), np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = x[k]
    return grid


@dataclass
class StageRate:
    """One stage of a pipeline timed alone: ``elements`` (batches after a batch step) in
    ``seconds``, and ``samples`` (elements before batching, batch rows after)."""

    stage: str
    elements: int
    samples: int
    seconds: float
    #: why the stage, a map with ``num_parallel_calls``, ran serially (None if it did not)
    serial_reason: str | None = None

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")

    @property
    def elements_per_second(self) -> float:
        return self.elements / self.seconds if self.seconds > 0 else float("inf")


def bench_stages(ds: Dataset, seconds: float = 2.0, epoch: int = 0) -> list[StageRate]:
    """Time every stage of the pipeline ending in ``ds``, each from the source up to it:
    iterate epoch ``epoch`` until it ends or ``seconds`` have passed. A parallel map that
    found its threads did not pay off (:class:`~trainctl.data.overlap.ParallelProbe`)
    carries the reason it ran serially."""
    rates = []
    names = describe(ds)
    for name, stage in zip(names, walk(ds)):
        batched = _batched(stage)
        elements = samples = 0
        start = time.perf_counter()
        it = stage.iterate(epoch)
        try:
            for element in it:
                elements += 1
                samples += len(flatten(element)[0]) if batched else 1
                if time.perf_counter() - start > seconds:
                    break
        finally:
            it.close()
        rates.append(StageRate(name, elements, samples, time.perf_counter() - start,
                               stage.serial_reason if isinstance(stage, Map) else None))
    return rates


def _batched(stage: Dataset) -> bool:
    """Whether the stage's elements are batches (a batch step before it, not undone)."""
    batched = False
    for step in walk(stage):
        if isinstance(step, (Batch, PaddedBatch)):
            batched = True
        elif isinstance(step, Unbatch):
            batched = False
    return batched
