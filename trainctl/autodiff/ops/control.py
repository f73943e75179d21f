"""Gradient control: ``stop_gradient`` (a value that the reverse pass treats as a constant)."""

from __future__ import annotations

from trainctl.autodiff.ops.core import defop


@defop("stop_gradient", differentiable=False)
def stop_gradient(x):
    """x's value as a constant: no gradient flows through it (TensorFlow's
    ``tf.stop_gradient``). Any shape and dtype; the result has x's shape and dtype and
    shares its memory. Never recorded, so ``d stop_gradient(x) / dx`` is None (or zeros)."""
    return x
