"""Element structures: what one dataset element looks like.

An element is a *structure*: a leaf ``numpy.ndarray``, a tuple of structures or a dict
(str keys) of structures. ``(features float32 [64], label int64 [])`` is the common case.
Lists are never structures: like tf.data, a list is converted to one array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from trainctl.data.lazy import numpy as np

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
    if len(structures) == 1:
        return _map_one(fn, first)
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


def _map_one(fn: Callable[[Any], Any], structure: Any) -> Any:
    """:func:`map_structure` of one structure (the hot path: no layout checks needed)."""
    if type(structure) is np.ndarray:
        return fn(structure)
    if isinstance(structure, tuple):
        return tuple([_map_one(fn, s) for s in structure])
    if isinstance(structure, dict):
        return {k: _map_one(fn, s) for k, s in structure.items()}
    return fn(structure)


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


def conform(element: Any, signature: Any) -> Any:
    """``element`` converted to the TensorSpec structure ``signature``.

    Each leaf becomes an array of the spec's dtype (``numpy.asarray(..., dtype)``); a
    spec dimension of None accepts any size. Raises DataError naming the leaf when the
    structure differs, a value cannot be converted or a shape does not fit.
    """
    if layout(element) != layout(signature):
        raise DataError(f"expected the structure {layout(signature)}, got {layout(element)}")
    out = []
    specs = flatten_with_paths(signature)
    for (path, spec), leaf in zip(specs, flatten(element)):
        try:
            array = np.asarray(leaf, dtype=spec.dtype)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: cannot convert to {np.dtype(spec.dtype).name}: {exc}") from None
        if len(array.shape) != len(spec.shape) or any(
                d is not None and d != a for d, a in zip(spec.shape, array.shape)):
            raise DataError(f"{path}: shape {list(array.shape)} does not fit {spec}")
        out.append(array)
    leaves = iter(out)
    return map_structure(lambda _: next(leaves), signature)


def encode_layout(structure: Any) -> Any:
    """A JSON-able description of ``structure``'s layout (leaves numbered in order)."""
    counter = iter(range(1 << 30))

    def walk(s: Any) -> Any:
        if isinstance(s, tuple):
            return {"tuple": [walk(v) for v in s]}
        if isinstance(s, dict):
            return {"dict": [[k, walk(v)] for k, v in s.items()]}
        return {"leaf": next(counter)}

    return walk(structure)


def decode_layout(encoded: Any, leaves: list[Any]) -> Any:
    """The structure :func:`encode_layout` described, with ``leaves[k]`` at leaf k."""
    if "tuple" in encoded:
        return tuple(decode_layout(v, leaves) for v in encoded["tuple"])
    if "dict" in encoded:
        return {k: decode_layout(v, leaves) for k, v in encoded["dict"]}
    return leaves[encoded["leaf"]]


def unstack(batch: Any) -> list[Any]:
    """The elements of ``batch`` along its first axis (the inverse of :func:`stack`).

    Raises DataError when a leaf is a scalar or the leaves differ in first-axis length.
    """
    leaves = flatten_with_paths(batch)
    sizes = set()
    for path, leaf in leaves:
        if np.ndim(leaf) == 0:
            raise DataError(f"unbatch: component {path} is a scalar; it has no axis to split")
        sizes.add(np.shape(leaf)[0])
    if len(sizes) > 1:
        raise DataError(f"unbatch: components differ in first-axis length {sorted(sizes)}")
    n = sizes.pop() if sizes else 0
    return [map_structure(lambda a: a[i, ...], batch) for i in range(n)]


def pad_stack(elements: list[Any], padded_shapes: Any, padding_values: Any) -> Any:
    """Stack ``elements`` leaf-wise, padding each leaf at the end of every axis.

    ``padded_shapes`` is a structure of shapes (tuples with None for "the largest in this
    batch") or None (all None); ``padding_values`` a structure of scalars or None (0,
    or "" for strings). Raises DataError when a leaf has another rank than its padded
    shape or is larger than a fixed padded dimension.
    """
    first = elements[0]
    shapes = (map_structure(lambda a: (None,) * np.ndim(a), first) if padded_shapes is None
              else padded_shapes)
    values = (map_structure(lambda a: "" if np.asarray(a).dtype.kind == "U" else 0, first)
              if padding_values is None else padding_values)
    leaf_shapes = {path: shape for path, shape in flatten_with_paths(_as_shapes(shapes, first))}
    leaf_values = flatten(values) if isinstance(values, (tuple, dict)) else None

    columns = list(zip(*(flatten(e) for e in elements)))
    paths = [p for p, _ in flatten_with_paths(first)]
    out = []
    for k, (path, column) in enumerate(zip(paths, columns)):
        target = leaf_shapes[path]
        ranks = {np.ndim(a) for a in column}
        if ranks != {len(target)}:
            raise DataError(f"padded_batch: component {path} has rank {sorted(ranks)} but "
                            f"its padded shape {list(target)} has rank {len(target)}")
        largest = [max(np.shape(a)[d] for a in column) for d in range(len(target))]
        dims = []
        for d, (want, big) in enumerate(zip(target, largest)):
            if want is not None and big > want:
                raise DataError(f"padded_batch: component {path} has size {big} on axis {d}, "
                                f"more than its padded size {want}")
            dims.append(big if want is None else want)
        fill = leaf_values[k] if leaf_values is not None else values
        dtype = np.asarray(column[0]).dtype
        if dtype.kind == "U":
            dtype = np.result_type(*(np.asarray(a).dtype for a in column), np.asarray(fill).dtype)
        batch = np.full((len(column), *dims), fill, dtype=dtype)
        for i, a in enumerate(column):
            batch[(i, *(slice(0, s) for s in np.shape(a)))] = a
        out.append(batch)
    leaves = iter(out)
    return map_structure(lambda _: next(leaves), first)


def _as_shapes(shapes: Any, like: Any) -> Any:
    """``shapes`` with every leaf (a list/tuple of dims) as a list, laid out like ``like``."""
    if isinstance(like, tuple):
        if not isinstance(shapes, tuple) or len(shapes) != len(like):
            raise DataError(f"padded_batch: padded_shapes {shapes!r} do not match the element "
                            f"structure {layout(like)}")
        return tuple(_as_shapes(s, e) for s, e in zip(shapes, like))
    if isinstance(like, dict):
        if not isinstance(shapes, dict) or shapes.keys() != like.keys():
            raise DataError(f"padded_batch: padded_shapes {shapes!r} do not match the element "
                            f"structure {layout(like)}")
        return {k: _as_shapes(shapes[k], like[k]) for k in like}
    if not isinstance(shapes, (list, tuple)) or not all(
            d is None or (isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0)
            for d in shapes):
        raise DataError(f"padded_batch: a padded shape must be a list of sizes or None, got {shapes!r}")
    return [None if d is None else int(d) for d in shapes]  # a list: stays one leaf
