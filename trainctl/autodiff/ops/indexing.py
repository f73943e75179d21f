"""Indexing and shape ops: embedding_lookup, scatter_add, one_hot, top_k, flip, pad,
split, squeeze/unsqueeze, tile, repeat, cumsum.

Registered primitives (forward and VJP side by side): embedding_lookup, flip, pad,
cumsum; one_hot has no gradient. The others are composed from getitem,
take_along_axis, put_along_axis_add, reshape and broadcast_to, so their gradients come
from those rules (repeated indices accumulate). numpy's semantics unless a docstring says
TensorFlow's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainctl.autodiff.ops.core import defop, fmt_shape
from trainctl.autodiff.ops.elementwise import add
from trainctl.autodiff.ops.movement import (
    _check_gather, broadcast_to, expand_dims, getitem, getitem_adjoint, put_along_axis_add,
    reshape, take_along_axis,
)
from trainctl.autodiff.ops.reduce import normalize_axes
from trainctl.autodiff.tensor import Tensor, to_torch
from trainctl.backend import as_dtype
from trainctl.errors import DTypeError, ShapeError

_INTS = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


# ---- lookups and scatters ----------------------------------------------------------------
@defop("embedding_lookup", inputs=2)
def embedding_lookup(table, ids):
    """Rows of ``table`` [vocab, dim] picked by integer ``ids`` [...] -> [..., dim]
    (tf.nn.embedding_lookup, F.embedding). The table's gradient adds up over repeated ids
    (a scatter-add); ids get none. Raises ShapeError for a table that is not 2-D or an id
    outside [0, vocab), DTypeError for non-integer ids.
    """
    if table.dim() != 2:
        raise ShapeError(f"embedding_lookup: table must be [vocab, dim], got "
                         f"{fmt_shape(table.shape)}")
    if ids.dtype not in _INTS:
        raise DTypeError(f"embedding_lookup: ids must be integers, got {str(ids.dtype)[6:]}")
    try:
        rows = table.index_select(0, ids.reshape(-1).long())
    except (IndexError, RuntimeError):
        raise ShapeError(f"embedding_lookup: ids out of range [0, {table.shape[0]}) for table "
                         f"{fmt_shape(table.shape)}") from None
    return rows.reshape(tuple(ids.shape) + (table.shape[1],))


@embedding_lookup.defvjp
def embedding_lookup_vjp(g, out, table, ids):
    column = Tensor(ids.data.reshape(-1, 1))
    flat = reshape(g, (column.shape[0], table.shape[1]))
    return put_along_axis_add(flat, column, axis=0, shape=table.shape), None


def scatter_add(x: Tensor, indices, updates: Tensor, axis: int) -> Tensor:
    """x plus ``updates`` added at ``indices`` along ``axis`` (torch.Tensor.scatter_add, the
    adjoint of take_along_axis): ``out[..., indices[..., i, ...], ...] += updates[..., i, ...]``.

    ``indices`` is an integer tensor of x's rank whose axes other than ``axis`` equal
    updates' (or are 1); updates must match x on every axis but ``axis``. Repeated indices
    add up. Composed: x + put_along_axis_add(updates, ...); differentiable in x and updates.
    Raises ShapeError naming the shapes when they do not fit.
    """
    from trainctl.autodiff.ops.core import _as_tensors

    x, indices, updates = _as_tensors("scatter_add", [x, indices, updates])
    ax = normalize_axes("scatter_add", axis, x.ndim)[0]
    if updates.ndim != x.ndim or any(a != b for i, (a, b) in enumerate(zip(updates.shape, x.shape))
                                     if i != ax):
        raise ShapeError(f"scatter_add: updates {fmt_shape(updates.shape)} do not fit into "
                         f"{fmt_shape(x.shape)} along axis {axis}")
    _check_gather("scatter_add", updates.data, indices.data, axis)
    return add(x, put_along_axis_add(updates, indices, axis=axis, shape=x.shape))


@defop("one_hot", differentiable=False)
def one_hot(indices, depth, dtype="float32"):
    """[..., depth] with 1 at each index and 0 elsewhere (no gradient). As in TensorFlow an
    index outside [0, depth) gives a row of zeros. Raises DTypeError for non-integer indices.
    """
    if indices.dtype not in _INTS:
        raise DTypeError(f"one_hot: indices must be integers, got {str(indices.dtype)[6:]}")
    classes = torch.arange(int(depth), device=indices.device)
    return (indices.unsqueeze(-1) == classes).to(as_dtype(dtype))


def top_k(x: Tensor, k: int = 1) -> tuple[Tensor, Tensor]:
    """(values, indices) of the ``k`` largest entries along the last axis, largest first
    (tf.math.top_k; among equal values the lower index comes first, as in TensorFlow).

    values is differentiable (composed: take_along_axis, so the gradient goes to the
    chosen positions); indices is int64 with no gradient. Raises ShapeError when k is
    negative or larger than the last axis.
    """
    if x.ndim == 0 or not 0 <= int(k) <= x.shape[-1]:
        raise ShapeError(f"top_k: k={k} does not fit the last axis of {fmt_shape(x.shape)}")
    order = torch.sort(x.data, dim=-1, descending=True, stable=True).indices[..., :int(k)]
    indices = Tensor(order)
    return take_along_axis(x, indices, axis=-1), indices


# ---- flips, pads, splits, squeezes ---------------------------------------------------------
@defop("flip")
def flip(x, axis=None):
    """x reversed along ``axis`` (an int, a tuple, or None for every axis), as numpy.flip."""
    return x.flip(normalize_axes("flip", axis, x.dim()))


@flip.defvjp
def flip_vjp(g, out, x, axis=None):
    return (flip(g, axis=axis),)


_PAD_MODES = ("constant", "reflect", "symmetric")


def _pad_plan(x, paddings, mode):
    """((before, after) per axis as ints, mode in lower case); raises on a bad request."""
    mode_l = str(mode).lower()
    if mode_l not in _PAD_MODES:
        raise ValueError(f"pad: mode must be 'constant', 'reflect' or 'symmetric', got {mode!r}")
    pads = to_torch(paddings).tolist() if not isinstance(paddings, (list, tuple)) else paddings
    shown = "[" + ",".join("[" + ",".join(str(v) for v in p) + "]" if isinstance(p, (list, tuple))
                           else str(p) for p in pads) + "]"
    if len(pads) != x.dim() or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pads):
        raise ShapeError(f"pad: paddings {shown} do not match rank {x.dim()} of "
                         f"{fmt_shape(x.shape)}")
    pads = tuple((int(b), int(a)) for b, a in pads)
    if any(v < 0 for p in pads for v in p):
        raise ShapeError(f"pad: paddings {shown} must be non-negative (shape {fmt_shape(x.shape)})")
    limit = {"reflect": 1, "symmetric": 0}.get(mode_l)
    for ax, (b, a) in enumerate(pads):
        if limit is not None and max(b, a) > x.shape[ax] - limit:
            raise ShapeError(f"pad: {mode_l} padding {max(b, a)} on axis {ax} needs a size "
                             f"of at least {max(b, a) + limit}, got {fmt_shape(x.shape)}")
    return pads, mode_l


def _mirror_index(n: int, before: int, after: int, mode: str, device) -> torch.Tensor:
    """Source position of each padded position along one axis (reflect or symmetric)."""
    p = torch.arange(-before, n + after, device=device)
    if mode == "reflect":
        return torch.where(p < 0, -p, torch.where(p >= n, 2 * (n - 1) - p, p))
    return torch.where(p < 0, -p - 1, torch.where(p >= n, 2 * n - 1 - p, p))


def _mirror_keys(shape, pads, mode, device):
    """(key, shape before) for each padded axis, in order: reflect/symmetric as getitem."""
    steps, shape = [], list(shape)
    for ax, (b, a) in enumerate(pads):
        if b or a:
            idx = _mirror_index(shape[ax], b, a, mode, device)
            steps.append(((slice(None),) * ax + (idx,), tuple(shape)))
            shape[ax] += b + a
    return steps


@defop("pad")
def pad(x, paddings, mode="constant", constant_values=0):
    """x padded by TensorFlow-style ``paddings`` [[before, after], ...] (one pair per axis).

    mode 'constant' fills with ``constant_values``; 'reflect' mirrors without repeating
    the edge (before/after ≤ size - 1), 'symmetric' mirrors with it (≤ size); case is
    ignored (tf.pad). The gradient of 'constant' is a slice; the mirrored modes add the
    mirrored gradients back. Raises ShapeError, e.g.
    ``pad: paddings [[1,1]] do not match rank 2 of [3,4]``; ValueError for an unknown mode.
    """
    pads, mode = _pad_plan(x, paddings, mode)
    if mode == "constant":
        flat = [v for b, a in reversed(pads) for v in (b, a)]
        return F.pad(x, flat, mode="constant", value=constant_values) if flat else x.clone()
    for key, _ in _mirror_keys(x.shape, pads, mode, x.device):
        x = x[key]
    return x


@pad.defvjp
def pad_vjp(g, out, x, paddings, mode="constant", constant_values=0):
    pads, mode = _pad_plan(x.data, paddings, mode)
    if mode == "constant":
        return (getitem(g, tuple(slice(b, b + n) for (b, _), n in zip(pads, x.shape))),)
    for key, shape in reversed(_mirror_keys(x.shape, pads, mode, x.device)):
        g = getitem_adjoint(g, key=key, shape=shape)
    return (g,)


def split(x: Tensor, num_or_sizes, axis: int = 0) -> list[Tensor]:
    """Pieces of x along ``axis`` (tf.split): an int n gives n equal pieces (n must divide
    the axis); a list gives pieces of those sizes, one of which may be -1 (the rest).
    Composed from getitem. Raises ShapeError naming the axis and shape when it does not fit.
    """
    ax = normalize_axes("split", axis, x.ndim)[0]
    n = x.shape[ax]
    if isinstance(num_or_sizes, (int, np.integer)):
        parts = int(num_or_sizes)
        if parts <= 0 or n % parts:
            raise ShapeError(f"split: cannot split axis {axis} of size {n} of {fmt_shape(x.shape)} "
                             f"into {parts} equal parts")
        sizes = [n // parts] * parts
    else:
        sizes = [int(s) for s in num_or_sizes]
        if sizes.count(-1) == 1 and all(s >= 0 for s in sizes if s != -1):
            sizes[sizes.index(-1)] = n - sum(s for s in sizes if s != -1)
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ShapeError(f"split: sizes {list(num_or_sizes)} do not add up to {n}, the size of "
                             f"axis {axis} of {fmt_shape(x.shape)}")
    pieces, start = [], 0
    for s in sizes:
        pieces.append(getitem(x, (slice(None),) * ax + (slice(start, start + s),)))
        start += s
    return pieces


def squeeze(x: Tensor, axis=None) -> Tensor:
    """x without axes of size 1: all of them (axis=None) or those in ``axis`` (an int or a
    tuple), composed from reshape. Raises ShapeError for a named axis whose size is not 1.
    """
    axes = (tuple(i for i, d in enumerate(x.shape) if d == 1) if axis is None
            else normalize_axes("squeeze", axis, x.ndim))
    for ax in axes:
        if x.shape[ax] != 1:
            raise ShapeError(f"squeeze: cannot squeeze axis {ax} of size {x.shape[ax]} in "
                             f"{fmt_shape(x.shape)}")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


unsqueeze = expand_dims


# ---- tiling and repeating --------------------------------------------------------------
def tile(x: Tensor, multiples) -> Tensor:
    """x repeated ``multiples[i]`` times along axis i (numpy.tile / torch.tile: a shorter
    ``multiples`` is padded with 1s in front, a longer one adds leading axes). Composed:
    reshape, broadcast_to, reshape, so the gradient sums the copies.
    """
    reps = tuple(int(m) for m in multiples)
    if any(m < 0 for m in reps):
        raise ShapeError(f"tile: multiples {list(reps)} must be non-negative "
                         f"(shape {fmt_shape(x.shape)})")
    nd = max(x.ndim, len(reps))
    shape = (1,) * (nd - x.ndim) + x.shape
    reps = (1,) * (nd - len(reps)) + reps
    paired = reshape(x, tuple(v for d in shape for v in (1, d)))
    spread = broadcast_to(paired, tuple(v for m, d in zip(reps, shape) for v in (m, d)))
    return reshape(spread, tuple(m * d for m, d in zip(reps, shape)))


def repeat(x: Tensor, repeats, axis: int | None = None) -> Tensor:
    """Each element repeated along ``axis`` (numpy.repeat / torch.repeat_interleave):
    ``repeats`` is an int or one count per element of the axis; axis=None flattens x first.
    Composed (broadcast for an int, getitem with an index array for counts), so the
    gradient sums each element's copies. Raises ShapeError for counts that do not match.
    """
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ax = normalize_axes("repeat", axis, x.ndim)[0]
    counts = repeats.data if isinstance(repeats, Tensor) else torch.as_tensor(np.asarray(repeats))
    if counts.dtype not in _INTS or counts.dim() > 1 or bool((counts < 0).any()):
        raise ShapeError(f"repeat: repeats must be non-negative integers, got {repeats!r}")
    n = x.shape[ax]
    if counts.dim() == 0 or counts.numel() == 1:
        r = int(counts.reshape(()))
        spread = broadcast_to(expand_dims(x, ax + 1), x.shape[:ax + 1] + (r,) + x.shape[ax + 1:])
        return reshape(spread, x.shape[:ax] + (n * r,) + x.shape[ax + 1:])
    if counts.numel() != n:
        raise ShapeError(f"repeat: {counts.numel()} repeats do not match axis {axis} of size {n} "
                         f"of {fmt_shape(x.shape)}")
    index = torch.repeat_interleave(torch.arange(n, device=x.device), counts.to(x.device))
    return getitem(x, (slice(None),) * ax + (index,))


# ---- scans -------------------------------------------------------------------------------
@defop("cumsum")
def cumsum(x, axis=0, exclusive=False, reverse=False):
    """Running sum along ``axis`` (tf.math.cumsum): ``exclusive`` leaves each element out
    of its own sum (the first is 0), ``reverse`` sums from the end. The VJP is a cumsum
    in the opposite direction. Raises ShapeError for a 0-d x or an axis out of range.
    """
    if x.dim() == 0:
        raise ShapeError("cumsum: needs a tensor of rank >= 1, got []")
    ax = normalize_axes("cumsum", axis, x.dim())[0]
    y = x.flip(ax) if reverse else x
    out = torch.cumsum(y, dim=ax)
    if exclusive and out.shape[ax]:
        shifted = out.narrow(ax, 0, out.shape[ax] - 1)
        out = torch.cat([torch.zeros_like(out.narrow(ax, 0, 1)), shifted], ax)
    return out.flip(ax) if reverse else out


@cumsum.defvjp
def cumsum_vjp(g, out, x, axis=0, exclusive=False, reverse=False):
    return (cumsum(g, axis=axis, exclusive=exclusive, reverse=not reverse),)
