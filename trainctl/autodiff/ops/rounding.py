"""Clipping and rounding: clip, floor, round, ceil.

Conventions (docs/autodiff.md): clip passes the gradient to x where lo <= x <= hi, the
boundaries included (as torch.clamp), and to lo/hi where they won; floor, round and ceil
are registered with a zero rule, so tape.gradient gives zeros through them (as torch),
not None, and chains such as ``x + stop_gradient(round(x) - x)`` still work.
"""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import defop
from trainctl.autodiff.ops.elementwise import mul
from trainctl.autodiff.tensor import Tensor


@defop("clip", broadcasting=True)
def _clip(x, lo, hi):
    """minimum(maximum(x, lo), hi), broadcasting (where lo > hi the result is hi)."""
    return torch.minimum(torch.maximum(x, lo), hi)


@_clip.defvjp
def _clip_vjp(g, out, x, lo, hi):
    take_hi = (x.data > hi.data) | (lo.data > hi.data)
    take_lo = (x.data < lo.data) & ~take_hi
    take_x = ~(take_hi | take_lo)
    return tuple(mul(g, Tensor(mask.to(g.dtype))) if t.tracked else None
                 for t, mask in ((x, take_x), (lo, take_lo), (hi, take_hi)))


def clip(x, lo=None, hi=None) -> Tensor:
    """x limited to [lo, hi] (numpy.clip, tf.clip_by_value); lo and hi are numbers or
    tensors that broadcast with x, and one of them may be None (no limit on that side).

    Gradient: 1 for x where lo <= x <= hi, boundaries included (torch.clamp's choice), 0
    outside; lo gets it where x < lo, hi where x > hi (or lo > hi, where the result is hi).
    Raises ValueError when both limits are None.
    """
    if lo is None and hi is None:
        raise ValueError("clip: give lo, hi or both")
    if lo is None or hi is None:
        dtype = x.dtype if isinstance(x, Tensor) else torch.float32
        if dtype.is_floating_point:
            low, high = float("-inf"), float("inf")
        else:
            low, high = torch.iinfo(dtype).min, torch.iinfo(dtype).max
        lo = low if lo is None else lo
        hi = high if hi is None else hi
    return _clip(x, lo, hi)


def _rounding(name: str, fn, doc: str):
    @defop(name)
    def forward(x):
        return fn(x)

    @forward.defvjp
    def zero_rule(g, out, x):
        return (Tensor(torch.zeros_like(g.data)),)

    forward.__doc__ = doc + " The gradient is 0 everywhere (a zero rule, as torch)."
    zero_rule.__name__ = f"{name}_vjp"
    return forward


floor = _rounding("floor", torch.floor, "The largest integer <= x, elementwise.")
ceil = _rounding("ceil", torch.ceil, "The smallest integer >= x, elementwise.")
round = _rounding("round", torch.round,  # noqa: A001 - the op's name
                  "x rounded to the nearest integer, halves to even (numpy, TensorFlow).")
