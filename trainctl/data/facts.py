"""What a run checks and records about its training data: one label's shape (for the
checks of losses and metrics against the model's output) and a fingerprint of the arrays
the training pipeline reads (for ``run.json``)."""

from __future__ import annotations

import hashlib
from typing import Any

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset
from trainctl.data.origins import TensorSlices
from trainctl.data.structure import flatten


def label_shape(ds: Dataset) -> tuple[int, ...] | None:
    """One label's shape (batch axis dropped) of a dataset of ``(features, label)``
    batches, or None when its elements are not such pairs or the shape is not fixed."""
    spec = ds.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2) or not hasattr(spec[1], "shape"):
        return None
    dims = tuple(spec[1].shape[1:])
    return None if any(d is None for d in dims) else tuple(int(d) for d in dims)


def fingerprint(ds: Dataset) -> dict[str, Any]:
    """A fingerprint of the arrays a pipeline reads: ``sha256`` (hex) over the dtype,
    shape and bytes of every array of its in-memory origins (``from_tensor_slices``), in
    pipeline order, plus the name and parameters of any other origin; ``arrays`` lists
    each array's ``shape`` and ``dtype``.

    The same data gives the same hash whatever the pipeline's steps (shuffling, batching:
    the spec hash covers those). Cost: one pass over the bytes (SHA-256, about 1 GB/s).
    """
    digest = hashlib.sha256()
    arrays: list[dict[str, Any]] = []
    for origin in _origins(ds):
        if isinstance(origin, TensorSlices):
            for leaf in flatten(origin._tensors):
                a = np.ascontiguousarray(leaf)
                digest.update(f"{a.dtype.str}{a.shape}".encode())
                if a.dtype.kind in "US":  # strings: their UTF-8 text, not numpy's padding
                    for item in a.reshape(-1):
                        digest.update(str(item).encode("utf-8") + b"\0")
                else:
                    digest.update(a.reshape(-1).view(np.uint8))
                arrays.append({"shape": list(a.shape), "dtype": str(a.dtype)})
        else:
            digest.update(f"{type(origin).__name__}{origin._params()}".encode())
    return {"sha256": digest.hexdigest(), "arrays": arrays}


def _origins(ds: Dataset) -> list[Dataset]:
    """The datasets without inputs that ``ds`` reads from, depth first."""
    inputs = ds._inputs()
    if not inputs:
        return [ds]
    return [o for parent in inputs for o in _origins(parent)]
