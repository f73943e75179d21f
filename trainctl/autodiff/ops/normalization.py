"""Normalisation: variance, std, moments, rsqrt, batch_norm, layer_norm.

``axis`` follows the reductions (None: all axes; an int or a tuple; negative counts from
the end). ``ddof`` is the delta degrees of freedom: 0 gives the population statistic
(divide by N), 1 the sample one (divide by N - 1), as numpy's ``ddof`` and torch's
``correction``.

batch_norm and layer_norm are fused ops with the analytic backward (Ioffe & Szegedy 2015;
Ba et al. 2016), written in our ops so they can be differentiated again. Both use the
biased (population) variance of the batch, as Keras and torch do when training.
"""

from __future__ import annotations

import math

import torch

from trainctl.autodiff.ops.core import defop, fmt_shape
from trainctl.autodiff.ops.elementwise import add, div, mul, sub, where
from trainctl.autodiff.ops.movement import reshape
from trainctl.autodiff.ops.reduce import _expand, mean, normalize_axes, sum
from trainctl.autodiff.tensor import Tensor, to_torch
from trainctl.errors import DTypeError, ShapeError


def _check_float(op: str, x) -> None:
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{op}: needs a floating tensor, got {str(x.dtype)[6:]} "
                         f"{fmt_shape(x.shape)}")


def _count(shape, axes) -> int:
    return math.prod(shape[a] for a in axes)


def _check_ddof(op: str, shape, axes, ddof) -> int:
    """N - ddof, the divisor; ShapeError when a reduced group has no more than ddof elements."""
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise TypeError(f"{op}: ddof must be a non-negative int, got {ddof!r}")
    n = _count(shape, axes)
    if n - ddof <= 0:
        raise ShapeError(f"{op}: ddof={ddof} needs more than {ddof} element(s) per group; "
                         f"reducing axes {list(axes)} of {fmt_shape(shape)} leaves {n}")
    return n - ddof


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(to_torch(x))


# ---- variance, std, moments -------------------------------------------------------------
def variance(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """Variance over ``axis``: sum((x - mean)²) / (N - ddof) (composed).

    x: a floating tensor of any shape; the result has x's shape without the reduced axes
    (kept with size 1 when ``keepdims``). The gradient is 2 (x - mean) / (N - ddof), 0 on a
    constant input. Raises DTypeError for a non-floating x and ShapeError when a group has
    no more than ``ddof`` elements.
    """
    x = _as_tensor(x)
    _check_float("variance", x)
    axes = normalize_axes("variance", axis, x.ndim)
    divisor = _check_ddof("variance", x.shape, axes, ddof)
    if x.ndim == 0:
        return mul(x, 0.0)
    xc = sub(x, mean(x, axis=axes, keepdims=True))
    return div(sum(mul(xc, xc), axis=axes, keepdims=keepdims), float(divisor))


@defop("std")
def std(x, axis=None, keepdims=False, ddof=0):
    """Standard deviation over ``axis``: sqrt(variance(x, axis, ddof=ddof)).

    Shapes and errors as :func:`variance`. The gradient is (x - mean) / ((N - ddof) std),
    and 0 where std == 0 (a constant group), where sqrt'(0) would give inf or NaN.
    """
    _check_float("std", x)
    axes = normalize_axes("std", axis, x.dim())
    _check_ddof("std", x.shape, axes, ddof)
    if x.dim() == 0:
        return torch.zeros_like(x)
    return torch.std(x, dim=axes, correction=ddof, keepdim=keepdims)


@std.defvjp
def std_vjp(g, out, x, axis=None, keepdims=False, ddof=0):
    axes = normalize_axes("std", axis, x.ndim)
    s = _expand(out, x, axis, keepdims)
    zero = Tensor(s.data == 0)
    safe = where(zero, 1.0, s)  # keeps the masked branch finite, so no NaN leaks through where
    xc = sub(x, mean(x, axis=axes, keepdims=True))
    scale = mul(safe, float(_count(x.shape, axes) - ddof))
    return (where(zero, 0.0, div(mul(_expand(g, x, axis, keepdims), xc), scale)),)


def moments(x, axis=None, keepdims=False) -> tuple[Tensor, Tensor]:
    """(mean, population variance) over ``axis``, as TensorFlow's ``tf.nn.moments`` (composed)."""
    return mean(x, axis=axis, keepdims=keepdims), variance(x, axis=axis, keepdims=keepdims)


@defop("rsqrt")
def rsqrt(x):
    """1 / sqrt(x) (inf at 0, NaN below 0); gradient -0.5 x^(-3/2)."""
    return torch.rsqrt(x)


@rsqrt.defvjp
def rsqrt_vjp(g, out, x):
    return (mul(g, mul(mul(out, mul(out, out)), -0.5)),)


# ---- batch and layer normalisation ----------------------------------------------------
def _param_shape(x, param_axes) -> tuple[int, ...]:
    """x's shape with 1 on every axis that gamma/beta do not span (their broadcast shape)."""
    return tuple(d if i in param_axes else 1 for i, d in enumerate(x.shape))


def _check_params(op: str, x, gamma, beta, param_axes, where_: str) -> tuple[int, ...]:
    """gamma and beta must be scalars or have x's sizes on ``param_axes``."""
    _check_float(op, x)
    want = tuple(x.shape[a] for a in param_axes)
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p.dim() != 0 and tuple(p.shape) != want:
            raise ShapeError(f"{op}: {name} {fmt_shape(p.shape)} must have shape "
                             f"{fmt_shape(want)} ({where_} of x {fmt_shape(x.shape)})")
    return _param_shape(x, param_axes)


def _normalize(x, gamma, beta, stat_axes, pshape, epsilon):
    """gamma (x - mean) / sqrt(var + epsilon) + beta on torch tensors."""
    mu = x.mean(dim=stat_axes, keepdim=True)
    var = x.var(dim=stat_axes, correction=0, keepdim=True)
    xhat = (x - mu) * torch.rsqrt(var + epsilon)
    return xhat * gamma.reshape(pshape if gamma.dim() else ()) + beta.reshape(
        pshape if beta.dim() else ())


def _normalize_vjp(g, x, gamma, beta, stat_axes, param_axes, epsilon):
    """The three-term backward of gamma x̂ + beta, x̂ = (x - μ) r, r = (σ² + ε)^(-1/2):

    dx = r / N (N ĝ - Σ ĝ - x̂ Σ ĝ x̂) with ĝ = g gamma and Σ over the statistics' axes;
    dgamma = Σ g x̂ and dbeta = Σ g over the axes gamma does not span.
    """
    n = float(_count(x.shape, stat_axes))
    xc = sub(x, mean(x, axis=stat_axes, keepdims=True))
    r = rsqrt(add(mean(mul(xc, xc), axis=stat_axes, keepdims=True), float(epsilon)))
    xhat = mul(xc, r)
    other = tuple(i for i in range(x.ndim) if i not in param_axes)
    pshape = _param_shape(x, param_axes)

    def param_grad(p, v):
        if not p.tracked:
            return None
        s = sum(v, axis=other, keepdims=True) if other else v
        return reshape(s, p.shape) if p.ndim else s  # a scalar parameter: the engine sums

    gx = None
    if x.tracked:
        gh = mul(g, reshape(gamma, pshape) if gamma.ndim else gamma)
        three = sub(sub(mul(gh, n), sum(gh, axis=stat_axes, keepdims=True)),
                    mul(xhat, sum(mul(gh, xhat), axis=stat_axes, keepdims=True)))
        gx = mul(div(r, n), three)
    return gx, param_grad(gamma, mul(g, xhat)), param_grad(beta, g)


def _channel_axis(op: str, x, axis) -> int:
    if x.dim() < 2:
        raise ShapeError(f"{op}: x {fmt_shape(x.shape)} needs a batch axis and a channel "
                         f"axis (rank >= 2)")
    if not -x.dim() <= axis < x.dim():
        raise ShapeError(f"{op}: axis {axis} is out of range for x {fmt_shape(x.shape)}")
    return axis % x.dim()


@defop("batch_norm", inputs=3)
def _batch_norm(x, gamma, beta, axis=-1, epsilon=1e-3):
    ax = _channel_axis("batch_norm", x, axis)
    pshape = _check_params("batch_norm", x, gamma, beta, (ax,), f"channel axis {axis}")
    return _normalize(x, gamma, beta, tuple(i for i in range(x.dim()) if i != ax), pshape,
                      epsilon)


@_batch_norm.defvjp
def _batch_norm_vjp(g, out, x, gamma, beta, axis=-1, epsilon=1e-3):
    ax = axis % x.ndim
    return _normalize_vjp(g, x, gamma, beta, tuple(i for i in range(x.ndim) if i != ax),
                          (ax,), epsilon)


def batch_norm(x, gamma=None, beta=None, axis: int = -1, epsilon: float = 1e-3) -> Tensor:
    """Batch normalisation in training mode (Ioffe & Szegedy 2015), statistics of the batch.

    y = gamma (x - μ) / sqrt(σ² + epsilon) + beta, with μ and σ² (biased) per channel over
    every axis but ``axis``: -1 for [batch, features] or NHWC (Keras' default), 1 for NCHW.
    x: floating, rank >= 2; gamma, beta: shape [C] with C = x.shape[axis], or scalars; None
    means 1 and 0. Returns x's shape. The batch statistics for moving averages come from
    :func:`moments`. Registered op ``batch_norm`` with the analytic three-term backward.
    Raises ShapeError (rank < 2, axis out of range, gamma/beta shape) and DTypeError.
    """
    x = _as_tensor(x)
    return _batch_norm(x, 1.0 if gamma is None else gamma, 0.0 if beta is None else beta,
                       axis=axis, epsilon=epsilon)


@defop("layer_norm", inputs=3)
def _layer_norm(x, gamma, beta, axes=-1, epsilon=1e-3):
    norm = normalize_axes("layer_norm", axes, x.dim())
    pshape = _check_params("layer_norm", x, gamma, beta, norm, f"axes {list(norm)}")
    return _normalize(x, gamma, beta, norm, pshape, epsilon)


@_layer_norm.defvjp
def _layer_norm_vjp(g, out, x, gamma, beta, axes=-1, epsilon=1e-3):
    norm = normalize_axes("layer_norm", axes, x.ndim)
    return _normalize_vjp(g, x, gamma, beta, norm, norm, epsilon)


def layer_norm(x, gamma=None, beta=None, axes=-1, epsilon: float = 1e-3) -> Tensor:
    """Layer normalisation (Ba et al. 2016): statistics per example over ``axes``.

    y = gamma (x - μ) / sqrt(σ² + epsilon) + beta, μ and σ² (biased) over ``axes`` (an int
    or a tuple; Keras' LayerNormalization ``axis``). gamma, beta: shape
    [x.shape[a] for a in axes] (broadcast over the other axes), or scalars; None means 1
    and 0. Returns x's shape. A constant row gives x̂ = 0 and finite gradients (epsilon > 0).
    Registered op ``layer_norm`` with the analytic backward. Raises ShapeError (axes out of
    range, gamma/beta shape) and DTypeError.
    """
    x = _as_tensor(x)
    return _layer_norm(x, 1.0 if gamma is None else gamma, 0.0 if beta is None else beta,
                       axes=axes, epsilon=epsilon)
