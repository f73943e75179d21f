"""Neural-network primitives fused for numerics: log_softmax and sigmoid cross-entropy;
log_softmax's backward fused for speed; softmax is composed from log_softmax."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainctl.autodiff.ops.core import defop, fmt_shape
from trainctl.autodiff.ops.elementwise import exp, mul, neg, sigmoid, sub
from trainctl.autodiff.ops.reduce import sum
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError


@defop("log_softmax")
def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``; finite for logits like ±1000 (fused for numerics)."""
    return torch.log_softmax(x, dim=axis)


@log_softmax.defvjp
def log_softmax_vjp(g, out, x, axis=-1):
    return (log_softmax_backward(g, out, axis=axis),)


@defop("log_softmax_backward", inputs=2)
def log_softmax_backward(g, out, axis=-1):
    """log_softmax's VJP: g - exp(out) * sum(g, axis, keepdims) for the upstream gradient g
    and log_softmax's output out, of one shape (fused for speed: torch's
    ``_log_softmax_backward_data``, one kernel where the composed rule is four ops).
    Raises ShapeError when the shapes differ."""
    if g.shape != out.shape:
        raise ShapeError(f"log_softmax_backward: gradient {fmt_shape(g.shape)} and output "
                         f"{fmt_shape(out.shape)} differ")
    return torch._log_softmax_backward_data(g, out, axis % max(out.dim(), 1), out.dtype)


@log_softmax_backward.defvjp
def log_softmax_backward_vjp(u, y, g, out, axis=-1):
    # y = g - e * s with e = exp(out), s = sum(g): dy/dg = I - e 1^T, dy/dout = -diag(e s)
    ue = mul(u, exp(out))
    gg = sub(u, sum(ue, axis=axis, keepdims=True)) if g.tracked else None
    gout = neg(mul(ue, sum(g, axis=axis, keepdims=True))) if out.tracked else None
    return gg, gout


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """exp(log_softmax(x)) along ``axis``: never overflows for large logits."""
    return exp(log_softmax(x, axis=axis))


@defop("sigmoid_cross_entropy_with_logits", broadcasting=True)
def sigmoid_cross_entropy_with_logits(logits, labels):
    """Elementwise -[z log σ(x) + (1 - z) log(1 - σ(x))] for logits x and labels z in [0, 1].

    Computed as max(x, 0) - x z + log(1 + e^-|x|) (TensorFlow's formula), exact for
    |x| = 1000; fused so the gradient σ(x) - z is exact at x = 0 as well.
    """
    if logits.shape != labels.shape:
        raise ShapeError(f"sigmoid_cross_entropy_with_logits: logits {fmt_shape(logits.shape)} "
                         f"and labels {fmt_shape(labels.shape)} differ")
    return torch.clamp_min(logits, 0) - logits * labels + F.softplus(-torch.abs(logits))


@sigmoid_cross_entropy_with_logits.defvjp
def sigmoid_cross_entropy_with_logits_vjp(g, out, logits, labels):
    gx = mul(g, sub(sigmoid(logits), labels)) if logits.tracked else None
    gz = mul(g, neg(logits)) if labels.tracked else None
    return gx, gz
