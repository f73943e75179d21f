"""Weight regularization: the penalty a model adds to its training loss.

A layer's ``kernel_regularizer`` / ``bias_regularizer`` (and embedding's, lstm/gru's
``recurrent_regularizer``, ...) is ``{l1: a, l2: b}`` (trainctl.spec.kinds.weights), giving
a·Σ|w| + b·Σw² for that weight (Keras' L1L2 — no 1/2 on l2, unlike "weight decay" λ/2·‖w‖²).
"""

from __future__ import annotations

from typing import Iterable

from trainctl.autodiff.tensor import Tensor
from trainctl.nn.layers.base import Layer


def regularization_loss(layers: Iterable[Layer]) -> Tensor | None:
    """Σ of every layer's :meth:`~trainctl.nn.layers.base.Layer.regularization_loss` (each
    distinct layer once, so a shared layer counts once): a scalar Tensor on the tape, or
    None when no layer is regularized (so an unregularized step costs nothing)."""
    total, seen = None, set()
    for layer in layers:
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        part = layer.regularization_loss()
        if part is not None:
            total = part if total is None else total + part
    return total
