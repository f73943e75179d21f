"""Reductions over axes: sum, mean, max, min, logsumexp, and sum_to (unbroadcast).

``axis`` is None (all axes), an int or a tuple of ints (negative counts from the end);
``keepdims`` keeps reduced axes with size 1. max/min split the gradient evenly among
tied extremes (TensorFlow's convention), so a reduced group's gradients sum to the
upstream gradient.
"""

from __future__ import annotations

import builtins

import torch

from trainctl.autodiff.ops.core import defop, fmt_shape
from trainctl.autodiff.ops.elementwise import div, exp, mul, sub
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError


def normalize_axes(op: str, axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a sorted tuple of non-negative ints; ShapeError if out of range."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for ax in axes:
        if not -builtins.max(ndim, 1) <= ax < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {ax} is out of range for a tensor of rank {ndim}")
        out.append(ax % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def _kept_shape(shape, axes) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _expand(g: Tensor, x: Tensor, axis, keepdims: bool) -> Tensor:
    """Reshape a reduced gradient so it broadcasts against x."""
    from trainctl.autodiff.ops.movement import reshape

    if keepdims or x.ndim == 0:
        return g
    return reshape(g, _kept_shape(x.shape, normalize_axes("reduce", axis, x.ndim)))


@defop("sum")
def sum(x, axis=None, keepdims=False):  # noqa: A001
    """Sum over ``axis``."""
    axes = normalize_axes("sum", axis, x.dim())
    if x.dim() == 0:
        return x.clone()
    return torch.sum(x, dim=axes, keepdim=keepdims)


@sum.defvjp
def sum_vjp(g, out, x, axis=None, keepdims=False):
    from trainctl.autodiff.ops.movement import broadcast_to

    if g.ndim == 0:  # a full reduction: a scalar broadcasts as it is (one op, not two)
        return (broadcast_to(g, x.shape),)
    return (broadcast_to(_expand(g, x, axis, keepdims), x.shape),)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Arithmetic mean over ``axis`` (composed: sum / count)."""
    x = x if isinstance(x, Tensor) else Tensor(torch.as_tensor(x))
    axes = normalize_axes("mean", axis, x.ndim)
    count = 1
    for ax in axes:
        count *= x.shape[ax]
    return div(sum(x, axis=axis, keepdims=keepdims), float(count))


def _extreme_vjp(g, out, x, axis, keepdims):
    from trainctl.autodiff.ops.movement import broadcast_to

    out_k = out.data if keepdims or x.ndim == 0 else out.data.reshape(
        _kept_shape(x.shape, normalize_axes("max", axis, x.ndim)))
    hit = (x.data == out_k).to(g.dtype)
    count = hit.sum(dim=normalize_axes("max", axis, x.ndim), keepdim=True) if x.ndim else hit
    share = Tensor(hit / count)
    return (mul(broadcast_to(_expand(g, x, axis, keepdims), x.shape), share),)


@defop("max")
def max(x, axis=None, keepdims=False):  # noqa: A001
    """Maximum over ``axis``; ties share the gradient evenly."""
    axes = normalize_axes("max", axis, x.dim())
    if x.numel() == 0:
        raise ShapeError(f"max: cannot reduce an empty tensor of shape {fmt_shape(x.shape)}")
    return torch.amax(x, dim=axes, keepdim=keepdims) if x.dim() else x.clone()


@max.defvjp
def max_vjp(g, out, x, axis=None, keepdims=False):
    return _extreme_vjp(g, out, x, axis, keepdims)


@defop("min")
def min(x, axis=None, keepdims=False):  # noqa: A001
    """Minimum over ``axis``; ties share the gradient evenly."""
    axes = normalize_axes("min", axis, x.dim())
    if x.numel() == 0:
        raise ShapeError(f"min: cannot reduce an empty tensor of shape {fmt_shape(x.shape)}")
    return torch.amin(x, dim=axes, keepdim=keepdims) if x.dim() else x.clone()


@min.defvjp
def min_vjp(g, out, x, axis=None, keepdims=False):
    return _extreme_vjp(g, out, x, axis, keepdims)


@defop("logsumexp")
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over ``axis``, stable for large |x| (fused for numerics)."""
    axes = normalize_axes("logsumexp", axis, x.dim())
    return torch.logsumexp(x, dim=axes, keepdim=keepdims) if x.dim() else x.clone()


@logsumexp.defvjp
def logsumexp_vjp(g, out, x, axis=None, keepdims=False):
    # softmax(x) over axis, shifted by a constant max: exp(x - out) would lose precision
    # when |out| is large, because out itself is rounded (float32 at 1000: 3e-5 relative)
    if x.ndim == 0:
        return (g,)
    m = torch.amax(x.data, dim=normalize_axes("logsumexp", axis, x.ndim), keepdim=True)
    e = exp(sub(x, Tensor(torch.where(torch.isfinite(m), m, torch.zeros_like(m)))))
    return (mul(_expand(g, x, axis, keepdims), div(e, sum(e, axis=axis, keepdims=True))),)


@defop("sum_to")
def sum_to(x, shape):
    """Sum a broadcast value back to ``shape`` (the inverse of broadcast_to).

    Leading axes that ``shape`` lacks are summed away; axes where ``shape`` has 1 are
    summed with keepdims. Raises ShapeError if x could not have been broadcast from shape.
    """
    shape = tuple(shape)
    lead = x.dim() - len(shape)
    if lead < 0 or any(s != 1 and s != d for s, d in zip(shape, x.shape[lead:])):
        raise ShapeError(f"sum_to: cannot reduce {fmt_shape(x.shape)} to {fmt_shape(shape)}")
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and x.shape[lead + i] != 1)
    y = torch.sum(x, dim=dims, keepdim=True) if dims else x
    return y.reshape(shape)


@sum_to.defvjp
def sum_to_vjp(g, out, x, shape):
    from trainctl.autodiff.ops.movement import broadcast_to

    return (broadcast_to(g, x.shape),)
