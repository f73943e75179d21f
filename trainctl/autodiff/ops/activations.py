"""Activations beyond relu/sigmoid/tanh/softplus: gelu (exact and tanh), silu, elu,
leaky_relu, softsign, hard_sigmoid, log_sigmoid, and erf (for the exact gelu).

All are composed from primitives except ``erf`` (a new primitive) and ``elu`` (fused for
numerics). Conventions at kinks (docs/autodiff.md), the same as torch and TensorFlow and
consistent with relu'(0) = 0 (the slope of the x <= 0 branch is taken at 0):
leaky_relu'(0) = alpha, elu'(0) = alpha, hard_sigmoid'(±3) = 0.
"""

from __future__ import annotations

import math

import torch

from trainctl.autodiff.ops.core import defop
from trainctl.autodiff.ops.elementwise import (
    abs, add, div, exp, greater, mul, neg, sigmoid, softplus, tanh, where,
)
from trainctl.autodiff.tensor import Tensor

_SQRT1_2 = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@defop("erf")
def erf(x):
    """The error function 2/√π ∫₀ˣ e^(-t²) dt; gradient 2/√π e^(-x²)."""
    return torch.erf(x)


@erf.defvjp
def erf_vjp(g, out, x):
    return (mul(g, mul(exp(neg(mul(x, x))), _TWO_OVER_SQRT_PI)),)


def gelu(x: Tensor, approximate: bool = False) -> Tensor:
    """Gaussian error linear unit (Hendrycks & Gimpel 2016), composed.

    Exact (default, as Keras 3): x Φ(x) = 0.5 x (1 + erf(x / √2)). ``approximate=True``:
    0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), torch's ``approximate='tanh'``.
    """
    if approximate:
        inner = mul(add(x, mul(mul(x, mul(x, x)), 0.044715)), _SQRT_2_OVER_PI)
        return mul(mul(x, 0.5), add(tanh(inner), 1.0))
    return mul(mul(x, 0.5), add(erf(mul(x, _SQRT1_2)), 1.0))


def silu(x: Tensor) -> Tensor:
    """x σ(x) (also called swish), composed."""
    return mul(x, sigmoid(x))


@defop("elu")
def elu(x, alpha=1.0):
    """x for x > 0, alpha (e^x - 1) otherwise (Clevert et al. 2015); elu'(0) = alpha."""
    # fused for numerics: expm1 is exact near 0, and e^x of the untaken branch never overflows
    return torch.where(x > 0, x, torch.expm1(torch.clamp_max(x, 0)) * alpha)


@elu.defvjp
def elu_vjp(g, out, x, alpha=1.0):
    return (where(greater(x, 0.0), g, mul(g, add(out, float(alpha)))),)


def leaky_relu(x: Tensor, alpha: float = 0.2) -> Tensor:
    """x for x > 0, alpha x otherwise; leaky_relu'(0) = alpha (composed).

    ``alpha`` defaults to 0.2, Keras 3's ``negative_slope``; torch's default is 0.01.
    """
    return where(greater(x, 0.0), x, mul(x, float(alpha)))


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|) (composed); smooth at 0, where its gradient is 1."""
    return div(x, add(abs(x), 1.0))


def hard_sigmoid(x: Tensor) -> Tensor:
    """relu6(x + 3) / 6 (Keras 3 and torch's hardsigmoid): 0 below -3, 1 above 3.

    Composed; the gradient is 1/6 on (-3, 3) and 0 elsewhere, including at ±3.
    """
    inside = Tensor((x.data > -3) & (x.data < 3))
    outside = Tensor((x.data >= 3).to(x.dtype))
    return where(inside, div(add(x, 3.0), 6.0), outside)


def log_sigmoid(x: Tensor) -> Tensor:
    """log σ(x) = -softplus(-x) (composed), exact for large |x|: -1000 at -1000, 0 at 1000."""
    return neg(softplus(neg(x)))
