"""Shape and movement ops: reshape, permute/transpose, broadcast_to, concat, stack,
numpy indexing (getitem) and its adjoint, take_along_axis (gather) and its adjoint."""

from __future__ import annotations

import math
import operator

import numpy as np
import torch

from trainctl.autodiff.ops.core import broadcast_shape, defop, fmt_shape
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import DTypeError, ShapeError


@defop("reshape")
def reshape(x, shape):
    """x with a new shape of the same size; one dimension may be -1."""
    shape = tuple(int(d) for d in shape)
    if -1 not in shape and math.prod(shape) == x.numel() and min(shape, default=0) >= 0:
        return x.reshape(shape)  # the common case, checked in one pass
    known = math.prod(d for d in shape if d != -1)
    ok = shape.count(-1) <= 1 and min(shape, default=0) >= -1 and (
        known == x.numel() if -1 not in shape else (known > 0 and x.numel() % known == 0))
    if not ok:
        raise ShapeError(f"reshape: cannot reshape {fmt_shape(x.shape)} to {fmt_shape(shape)}")
    return x.reshape(shape)


@reshape.defvjp
def reshape_vjp(g, out, x, shape):
    return (reshape(g, x.shape),)


@defop("permute")
def permute(x, axes):
    """Axes reordered: output axis i is input axis ``axes[i]``."""
    axes = tuple(int(a) % max(x.dim(), 1) for a in axes)
    if sorted(axes) != list(range(x.dim())):
        raise ShapeError(f"permute: {list(axes)} is not a permutation of the axes of "
                         f"{fmt_shape(x.shape)}")
    return x.permute(axes)


@permute.defvjp
def permute_vjp(g, out, x, axes):
    axes = [int(a) % max(x.ndim, 1) for a in axes]
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (permute(g, tuple(inverse)),)


def transpose(x: Tensor, axes=None) -> Tensor:
    """Reverse the axes (numpy's transpose), or permute them by ``axes``."""
    return permute(x, tuple(range(x.ndim))[::-1] if axes is None else tuple(axes))


def swapaxes(x: Tensor, a: int, b: int) -> Tensor:
    """Exchange two axes."""
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, tuple(axes))


@defop("broadcast_to")
def broadcast_to(x, shape):
    """x broadcast (numpy rules) to ``shape``."""
    shape = tuple(int(d) for d in shape)
    if broadcast_shape(tuple(x.shape), shape) != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast {fmt_shape(x.shape)} to "
                         f"{fmt_shape(shape)}")
    return x.expand(shape)


@broadcast_to.defvjp
def broadcast_to_vjp(g, out, x, shape):
    from trainctl.autodiff.ops.reduce import sum_to

    return (sum_to(g, x.shape),)


@defop("concat")
def concat(*xs, axis=0):
    """Join tensors along an existing ``axis``; other axes must agree."""
    if not xs:
        raise ShapeError("concat: needs at least one tensor")
    nd = xs[0].dim()
    ax = axis % max(nd, 1)
    for t in xs[1:]:
        if t.dim() != nd or any(a != b for i, (a, b) in enumerate(zip(t.shape, xs[0].shape)) if i != ax):
            raise ShapeError(f"concat: cannot join {fmt_shape(xs[0].shape)} and "
                             f"{fmt_shape(t.shape)} along axis {axis}")
    return torch.cat(xs, dim=ax)


@concat.defvjp
def concat_vjp(g, out, *xs, axis=0):
    ax = axis % max(g.ndim, 1)
    grads, start = [], 0
    for t in xs:
        stop = start + t.shape[ax]
        key = (slice(None),) * ax + (slice(start, stop),)
        grads.append(getitem(g, key) if t.tracked else None)
        start = stop
    return tuple(grads)


def stack(xs, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new ``axis`` (composed: expand_dims + concat)."""
    xs = list(xs)
    if not xs:
        raise ShapeError("stack: needs at least one tensor")
    for t in xs[1:]:
        if t.shape != xs[0].shape:
            raise ShapeError(f"stack: shapes differ: {fmt_shape(xs[0].shape)} and {fmt_shape(t.shape)}")
    return concat(*[expand_dims(t, axis) for t in xs], axis=axis)


def expand_dims(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis`` (composed: reshape)."""
    shape = list(x.shape)
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ShapeError(f"expand_dims: axis {axis} is out of range for a tensor of rank "
                         f"{len(shape)}")
    ax = axis if axis >= 0 else len(shape) + 1 + axis
    shape.insert(ax, 1)
    return reshape(x, tuple(shape))


def flatten(x: Tensor, start_axis: int = 1) -> Tensor:
    """Collapse axes from ``start_axis`` on into one (composed: reshape)."""
    return reshape(x, x.shape[:start_axis] + (math.prod(x.shape[start_axis:]),))


# ---- indexing: x[key] ---------------------------------------------------------------
# A key is normalised once per call into what torch indexing accepts, with numpy's
# meaning: negative-step slices become a flip of the axis plus a positive-step slice;
# lists, numpy arrays and Tensors become int64/bool index tensors on x's device; 0-d
# integer arrays become ints (as numpy treats them); and when the key has an advanced
# index, ints become one-element index tensors, so that advanced indices separated by a
# slice put their axes first as numpy does (torch would apply the ints as selections).
_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _index_part(k, device):
    if k is None or k is Ellipsis:
        return k
    if isinstance(k, slice):
        return slice(*(None if v is None else operator.index(v) for v in (k.start, k.stop, k.step)))
    if isinstance(k, (bool, np.bool_)):
        return torch.tensor(bool(k), device=device)
    if isinstance(k, (int, np.integer)):
        return int(k)
    if isinstance(k, Tensor):
        t = k.data
    elif isinstance(k, torch.Tensor):
        t = k.detach()
    elif isinstance(k, (list, np.ndarray)):
        arr = np.asarray(k)
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)  # x[[]] selects nothing, as in numpy
        if arr.dtype.kind not in "biu":
            raise DTypeError(f"getitem: index arrays must hold integers or bools, got {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"getitem: index {k!r} is not supported; use ints, slices, None, ..., "
                        f"integer or bool arrays/Tensors")
    if t.dtype == torch.bool:
        return t.to(device)
    if t.dtype not in _INT_DTYPES:
        raise DTypeError(f"getitem: index tensors must be integer or bool, got {str(t.dtype)[6:]}")
    return int(t.item()) if t.dim() == 0 else t.to(device=device, dtype=torch.int64)


def _rank_used(k) -> int:
    if isinstance(k, torch.Tensor):
        return k.dim() if k.dtype == torch.bool else 1
    return 1 if isinstance(k, (int, slice)) else 0


def _positive_slice(s: slice, n: int):
    """The slice, on the axis flipped when its step is negative: (slice, flipped)."""
    start, stop, step = s.indices(n)
    if step > 0:
        return s, False
    count = len(range(start, stop, step))
    if count == 0:
        return slice(0, 0), False
    first = n - 1 - start
    return slice(first, first + (count - 1) * -step + 1, -step), True


def normalize_key(key, shape, device) -> tuple[tuple, tuple, bool]:
    """(axes to flip first, key for torch, advanced?) for ``x[key]`` on a tensor of ``shape``.

    Raises ShapeError for too many indices or a zero step, DTypeError for float indices.
    """
    parts = [_index_part(k, device) for k in (key if isinstance(key, tuple) else (key,))]
    if sum(k is Ellipsis for k in parts) > 1:
        raise ShapeError("getitem: an index can only have a single ellipsis ('...')")
    used = sum(_rank_used(k) for k in parts)
    if used > len(shape):
        raise ShapeError(f"getitem: too many indices ({used}) for a tensor of shape "
                         f"{fmt_shape(shape)}")
    flips, axis = [], 0
    for i, k in enumerate(parts):
        if k is Ellipsis:
            axis += len(shape) - used
            continue
        if isinstance(k, slice):
            if k.step == 0:
                raise ShapeError(f"getitem: slice step cannot be zero (shape {fmt_shape(shape)})")
            parts[i], flipped = _positive_slice(k, shape[axis])
            if flipped:
                flips.append(axis)
        axis += _rank_used(k)
    advanced = any(isinstance(k, torch.Tensor) for k in parts)
    if any(isinstance(k, torch.Tensor) and k.dim() > 0 for k in parts):
        parts = [torch.tensor([k], device=device) if isinstance(k, int) else k for k in parts]
    return tuple(flips), tuple(parts), advanced


@defop("getitem")
def getitem(x, key):
    """numpy indexing ``x[key]``: ints, slices (any step, negative too), None, ``...``,
    integer arrays (lists, numpy arrays, int Tensors) and boolean masks, mixed as numpy
    allows. Repeated integer indices add up in the gradient.

    Raises ShapeError for an out-of-range index or a mask of the wrong shape (naming
    x's shape), DTypeError for float index arrays, TypeError for other index kinds.
    """
    flips, tkey, _ = normalize_key(key, x.shape, x.device)
    try:
        return (x.flip(flips) if flips else x)[tkey]
    except IndexError as exc:
        raise ShapeError(f"getitem: {exc} (shape {fmt_shape(x.shape)})") from None


@getitem.defvjp
def getitem_vjp(g, out, x, key):
    return (getitem_adjoint(g, key=key, shape=x.shape),)


@defop("getitem_adjoint")
def getitem_adjoint(g, key, shape):
    """Zeros of ``shape`` with ``g`` added at ``x[key]``'s positions (the VJP of getitem).

    Positions selected more than once (repeated integer indices) accumulate, through
    ``index_put_(accumulate=True)`` on flat positions.
    """
    flips, tkey, advanced = normalize_key(key, shape, g.device)
    z = torch.zeros(shape, dtype=g.dtype, device=g.device)
    if advanced:
        pos = torch.arange(z.numel(), device=g.device).reshape(shape)
        pos = (pos.flip(flips) if flips else pos)[tkey]
        z.view(-1).index_put_((pos.reshape(-1),), g.expand(pos.shape).reshape(-1), accumulate=True)
        return z
    z[tkey] = g
    return z.flip(flips) if flips else z


@getitem_adjoint.defvjp
def getitem_adjoint_vjp(gg, out, g, key, shape):
    return (getitem(gg, key),)


def _check_gather(op: str, x, idx, axis):
    if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ShapeError(f"{op}: indices must be integers, got {str(idx.dtype)[6:]}")
    if idx.dim() != x.dim():
        raise ShapeError(f"{op}: indices of rank {idx.dim()} {fmt_shape(idx.shape)} do not match "
                         f"values of rank {x.dim()} {fmt_shape(x.shape)}")
    ax = axis % x.dim()
    for i, (a, b) in enumerate(zip(idx.shape, x.shape)):
        if i != ax and a != b and a != 1:
            raise ShapeError(f"{op}: cannot take {fmt_shape(idx.shape)} along axis {axis} of "
                             f"{fmt_shape(x.shape)}")
    return ax


@defop("take_along_axis", inputs=2)
def take_along_axis(x, indices, axis):
    """numpy.take_along_axis: ``out[..., i, ...] = x[..., indices[..., i, ...], ...]``.

    ``indices`` is an integer tensor of x's rank with values in [0, size); other axes
    broadcast from size 1. The gradient adds up over repeated indices.
    """
    ax = _check_gather("take_along_axis", x, indices, axis)
    shape = list(x.shape)
    shape[ax] = indices.shape[ax]
    idx = indices.long().expand(shape)
    return torch.gather(x, ax, idx)  # torch raises (no host sync here) on an out-of-range index


@take_along_axis.defvjp
def take_along_axis_vjp(g, out, x, indices, axis):
    return put_along_axis_add(g, indices, axis=axis, shape=x.shape), None


@defop("put_along_axis_add", inputs=2)
def put_along_axis_add(g, indices, axis, shape):
    """Zeros of ``shape`` plus ``g`` added at ``indices`` along ``axis`` (adjoint of take_along_axis)."""
    ax = axis % len(shape)
    idx = indices.long().expand(g.shape)
    return torch.zeros(shape, dtype=g.dtype, device=g.device).scatter_add_(ax, idx, g)


@put_along_axis_add.defvjp
def put_along_axis_add_vjp(gg, out, g, indices, axis, shape):
    return take_along_axis(gg, indices, axis=axis), None
