"""Element structures: what one dataset element looks like.

An element is a *structure*: a leaf ``numpy.ndarray``, a tuple of structures or a dict
(str keys) of structures. ``(features float32 [64], label int64 [])`` is the common case.
Lists are never structures: like tf.data, a list is converted to one array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from trainctl.errors import DataError


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one leaf of an element; ``None`` marks a dimension that varies."""

    shape: tuple[int | None, ...]
    dtype: np.dtype

    def __repr__(self) -> str:
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        return f"TensorSpec(shape=[{dims}], dtype={np.dtype(self.dtype).name})"


def flatten_with_paths(structure: Any, path: str = "") -> list[tuple[str, Any]]:
    """Leaves of ``structure`` in order, each with a readable path such as ``[0]`` or ``['x']``."""
    if isinstance(structure, tuple):
        out: list[tuple[str, Any]] = []
        for i, item in enumerate(structure):
            out += flatten_with_paths(item, f"{path}[{i}]")
        return out
    if isinstance(structure, dict):
        out = []
        for key, item in structure.items():
            out += flatten_with_paths(item, f"{path}[{key!r}]")
        return out
    return [(path or "element", structure)]


def flatten(structure: Any) -> list[Any]:
    """Leaves of ``structure`` in order."""
    return [leaf for _, leaf in flatten_with_paths(structure)]


def map_structure(fn: Callable[..., Any], *structures: Any) -> Any:
    """Apply ``fn`` leaf-wise to structures of the same layout; returns that layout.

    Raises DataError when the structures differ (e.g. ``map`` returned a tuple for one
    element and a dict for another).
    """
    first = structures[0]
    if isinstance(first, tuple):
        if any(not isinstance(s, tuple) or len(s) != len(first) for s in structures):
            raise DataError(f"elements have different structures: {_layouts(structures)}")
        return tuple(map_structure(fn, *items) for items in zip(*structures))
    if isinstance(first, dict):
        if any(not isinstance(s, dict) or s.keys() != first.keys() for s in structures):
            raise DataError(f"elements have different structures: {_layouts(structures)}")
        return {k: map_structure(fn, *(s[k] for s in structures)) for k in first}
    if any(isinstance(s, (tuple, dict)) for s in structures):
        raise DataError(f"elements have different structures: {_layouts(structures)}")
    return fn(*structures)


def _layouts(structures: tuple[Any, ...]) -> str:
    return " vs ".join(str(layout(s)) for s in structures[:2])


def layout(structure: Any) -> Any:
    """The layout of ``structure`` with every leaf replaced by ``'array'`` (for messages)."""
    if isinstance(structure, tuple):
        return tuple(layout(s) for s in structure)
    if isinstance(structure, dict):
        return {k: layout(s) for k, s in structure.items()}
    return "array"


def to_arrays(structure: Any) -> Any:
    """``structure`` with every leaf converted by ``numpy.asarray`` (scalars become 0-d)."""
    return map_structure(np.asarray, structure)


def spec_of(element: Any) -> Any:
    """The TensorSpec structure describing one concrete element."""
    return map_structure(lambda a: TensorSpec(tuple(a.shape), a.dtype), element)


def stack(elements: list[Any]) -> Any:
    """Stack ``elements`` leaf-wise along a new first axis.

    Each leaf of the result has shape ``[len(elements), *leaf_shape]``. Raises DataError
    naming the shapes when two elements' leaves differ in shape.
    """

    def stack_leaf(*leaves: np.ndarray) -> np.ndarray:
        shape = leaves[0].shape
        for leaf in leaves:
            if leaf.shape != shape:
                raise DataError(f"batch: cannot stack elements of shapes {list(shape)} "
                                f"and {list(leaf.shape)}; elements of a batch need one shape")
        return np.stack(leaves)

    return map_structure(stack_leaf, *elements)
