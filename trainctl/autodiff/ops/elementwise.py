"""Elementwise ops: arithmetic, exp/log family, activations, comparisons, where, cast.

Conventions at non-differentiable points (documented in docs/autodiff.md):
relu'(0) = 0, abs'(0) = 0, and maximum/minimum of equal operands give each side half.
"""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import defop
from trainctl.errors import ShapeError, fmt_shape
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import as_dtype


def _const(mask: torch.Tensor, like: Tensor) -> Tensor:
    """A constant (non-differentiable) tensor in ``like``'s dtype, e.g. a 0/1 mask."""
    return Tensor(mask.to(like.dtype))


# ---- arithmetic -------------------------------------------------------------------
@defop("add", broadcasting=True)
def add(a, b):
    """a + b, broadcasting."""
    return torch.add(a, b)


@add.defvjp
def add_vjp(g, out, a, b):
    return g, g


@defop("sub", broadcasting=True)
def sub(a, b):
    """a - b, broadcasting."""
    return torch.sub(a, b)


@sub.defvjp
def sub_vjp(g, out, a, b):
    return g, neg(g)


@defop("mul", broadcasting=True)
def mul(a, b):
    """a * b, broadcasting."""
    return torch.mul(a, b)


@mul.defvjp
def mul_vjp(g, out, a, b):
    return (mul(g, b) if a.tracked else None), (mul(g, a) if b.tracked else None)


@defop("div", broadcasting=True)
def div(a, b):
    """a / b (true division), broadcasting."""
    return torch.div(a, b)


@div.defvjp
def div_vjp(g, out, a, b):
    ga = div(g, b) if a.tracked else None
    gb = neg(div(mul(g, out), b)) if b.tracked else None
    return ga, gb


@defop("neg")
def neg(a):
    """-a."""
    return torch.neg(a)


@neg.defvjp
def neg_vjp(g, out, a):
    return (neg(g),)


@defop("pow", broadcasting=True)
def pow(a, b):  # noqa: A001 - the op's name
    """a ** b, broadcasting. d/db uses log(a); where a == 0 and b >= 0 it is 0 (as torch)."""
    return torch.pow(a, b)


@pow.defvjp
def pow_vjp(g, out, a, b):
    ga = mul(g, mul(b, pow(a, sub(b, 1)))) if a.tracked else None
    gb = None
    if b.tracked:
        zero = (a.data == 0) & (b.data >= 0)
        mask = Tensor(zero)
        safe_a = where(mask, ones_scalar(a), a)
        gb = where(mask, zeros_scalar(g), mul(g, mul(out, log(safe_a))))
    return ga, gb


# ---- exp / log family ---------------------------------------------------------------
@defop("exp")
def exp(a):
    """e ** a."""
    return torch.exp(a)


@exp.defvjp
def exp_vjp(g, out, a):
    return (mul(g, out),)


@defop("log")
def log(a):
    """Natural logarithm (-inf at 0, NaN below)."""
    return torch.log(a)


@log.defvjp
def log_vjp(g, out, a):
    return (div(g, a),)


@defop("sqrt")
def sqrt(a):
    """Square root."""
    return torch.sqrt(a)


@sqrt.defvjp
def sqrt_vjp(g, out, a):
    return (div(g, mul(out, 2.0)),)


@defop("abs")
def abs(a):  # noqa: A001
    """|a|; the gradient at 0 is 0."""
    return torch.abs(a)


@abs.defvjp
def abs_vjp(g, out, a):
    return (mul(g, _const(torch.sign(a.data), g)),)


# ---- maximum / minimum ---------------------------------------------------------------
def _tie_masks(a: Tensor, b: Tensor, g: Tensor, greater: bool):
    """Masks for the winner of maximum (greater=True) or minimum; ties give each half."""
    wins = (a.data > b.data) if greater else (a.data < b.data)
    ties = (a.data == b.data).to(g.dtype) * 0.5
    ma = wins.to(g.dtype) + ties
    return Tensor(ma), Tensor(1.0 - ma)


@defop("maximum", broadcasting=True)
def maximum(a, b):
    """Elementwise max; where a == b each operand gets half the gradient."""
    return torch.maximum(a, b)


@maximum.defvjp
def maximum_vjp(g, out, a, b):
    ma, mb = _tie_masks(a, b, g, greater=True)
    return mul(g, ma), mul(g, mb)


@defop("minimum", broadcasting=True)
def minimum(a, b):
    """Elementwise min; where a == b each operand gets half the gradient."""
    return torch.minimum(a, b)


@minimum.defvjp
def minimum_vjp(g, out, a, b):
    ma, mb = _tie_masks(a, b, g, greater=False)
    return mul(g, ma), mul(g, mb)


# ---- activations ----------------------------------------------------------------------
@defop("relu")
def relu(a):
    """max(a, 0); relu'(0) = 0."""
    return torch.relu(a)


@relu.defvjp
def relu_vjp(g, out, a):
    return (relu_grad(g, out),)


@defop("relu_grad", inputs=2)
def relu_grad(g, y):
    """relu's VJP from its output: g where y > 0, else 0 (g, y: one shape and dtype).

    One kernel, ``torch.threshold_backward(g, y, 0)`` (the one torch's autograd uses for
    relu); y > 0 exactly where relu's input is > 0, so relu'(0) = 0 still holds. Gives +0
    where y <= 0 even when g is negative or not finite (a mask product would give -0/nan).
    Raises ShapeError when the shapes differ."""
    if g.shape != y.shape:
        raise ShapeError(f"relu_grad: gradient {fmt_shape(g.shape)} and output "
                         f"{fmt_shape(y.shape)} differ")
    return torch.ops.aten.threshold_backward.default(g, y, 0)


@relu_grad.defvjp
def relu_grad_vjp(gg, out, g, y):
    # linear in g with the same mask; piecewise constant in y (zero almost everywhere)
    return (relu_grad(gg, y) if g.tracked else None), None


@defop("sigmoid")
def sigmoid(a):
    """1 / (1 + e^-a), computed stably by torch."""
    return torch.sigmoid(a)


@sigmoid.defvjp
def sigmoid_vjp(g, out, a):
    return (mul(g, mul(out, sub(1.0, out))),)


@defop("tanh")
def tanh(a):
    """Hyperbolic tangent."""
    return torch.tanh(a)


@tanh.defvjp
def tanh_vjp(g, out, a):
    return (mul(g, sub(1.0, mul(out, out))),)


@defop("softplus")
def softplus(a):
    """log(1 + e^a), computed stably (exact for large |a|)."""
    # not F.softplus: its threshold (a > 20 -> a) is off by up to 2e-9 in float64
    return torch.clamp_min(a, 0) + torch.log1p(torch.exp(-torch.abs(a)))


@softplus.defvjp
def softplus_vjp(g, out, a):
    return (mul(g, sigmoid(a)),)


# ---- selection, casts, comparisons -------------------------------------------------
@defop("where", broadcasting=True)
def where(cond, a, b):
    """a where cond is true, else b (cond: bool tensor; broadcasting)."""
    return torch.where(cond.bool() if cond.dtype != torch.bool else cond, a, b)


@where.defvjp
def where_vjp(g, out, cond, a, b):
    zero = zeros_scalar(g)
    return None, where(cond, g, zero), where(cond, zero, g)


def zeros_scalar(like: Tensor) -> Tensor:
    """A 0-d constant 0 in ``like``'s dtype and device."""
    return Tensor(torch.zeros((), dtype=like.dtype, device=like.device))


def ones_scalar(like: Tensor) -> Tensor:
    """A 0-d constant 1 in ``like``'s dtype and device."""
    return Tensor(torch.ones((), dtype=like.dtype, device=like.device))


@defop("cast")
def cast(a, dtype):
    """a converted to ``dtype`` (a name like 'float64' or a torch dtype)."""
    return a.to(as_dtype(dtype))


@cast.defvjp
def cast_vjp(g, out, a, dtype):
    if not a.dtype.is_floating_point:
        return (None,)
    return (cast(g, a.dtype),)


def _comparison(name: str, fn):
    @defop(name, differentiable=False, broadcasting=True)
    def compare(a, b):
        return fn(a, b)

    compare.__doc__ = f"Elementwise {name} as a bool tensor (no gradient)."
    return compare


equal = _comparison("equal", torch.eq)
not_equal = _comparison("not_equal", torch.ne)
greater = _comparison("greater", torch.gt)
greater_equal = _comparison("greater_equal", torch.ge)
less = _comparison("less", torch.lt)
less_equal = _comparison("less_equal", torch.le)


@defop("sign", differentiable=False)
def sign(a):
    """-1, 0 or 1 (no gradient)."""
    return torch.sign(a)
