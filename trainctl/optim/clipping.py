"""Gradient clipping: by global norm, by each gradient's norm, by value.

The formulas are torch.nn.utils' (``clip_grad_norm_``, ``clip_grad_value_``); these
functions take the gradients themselves (None entries are passed through), return new
tensors (the caller's are not changed) and never read a value back to the host: the
scale factor stays a 0-d tensor on the device.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

Grads = Sequence[Optional[torch.Tensor]]

NORM_EPS = 1e-6  # torch.nn.utils.clip_grads_with_norm_: max_norm / (total_norm + 1e-6)


def global_norm(grads: Grads) -> torch.Tensor:
    """The Euclidean norm of all the gradients together, √(Σ‖g‖²), a 0-d tensor (of the
    first gradient's device; torch.nn.utils.get_total_norm). Raises ValueError if every
    gradient is None."""
    present = [g for g in grads if g is not None]
    if not present:
        raise ValueError("global_norm: every gradient is None")
    return torch.nn.utils.get_total_norm(present, norm_type=2.0)


def _scaled(g: torch.Tensor, norm: torch.Tensor, max_norm: float) -> torch.Tensor:
    coef = torch.clamp(max_norm / (norm + NORM_EPS), max=1.0)
    return g * coef.to(device=g.device)


def clip_by_global_norm(grads: Grads, max_norm: float) -> list[Optional[torch.Tensor]]:
    """Scale all gradients by ``min(1, max_norm / (‖g‖ + 1e-6))``, ‖g‖ their global norm:
    torch.nn.utils.clip_grad_norm_ (L2). ``max_norm`` > 0."""
    if all(g is None for g in grads):
        return list(grads)
    norm = global_norm(grads)
    return [None if g is None else _scaled(g, norm, max_norm) for g in grads]


def clip_by_norm(grads: Grads, max_norm: float) -> list[Optional[torch.Tensor]]:
    """Scale each gradient alone by ``min(1, max_norm / (‖g‖ + 1e-6))`` (Keras'
    ``clipnorm``, with torch's formula: clip_grad_norm_ applied to one tensor at a time)."""
    return [None if g is None else _scaled(g, torch.linalg.vector_norm(g), max_norm)
            for g in grads]


def clip_by_value(grads: Grads, value: float) -> list[Optional[torch.Tensor]]:
    """Clamp every element to ``[-value, value]`` (torch.nn.utils.clip_grad_value_)."""
    return [None if g is None else g.clamp(-value, value) for g in grads]


def clip_gradients(grads: Grads, *, clipnorm: float | None = None,
                   global_clipnorm: float | None = None,
                   clipvalue: float | None = None) -> list[Optional[torch.Tensor]]:
    """Apply the clipping an optimizer config names (at most one is set; none: unchanged)."""
    if global_clipnorm:
        return clip_by_global_norm(grads, global_clipnorm)
    if clipnorm:
        return clip_by_norm(grads, clipnorm)
    if clipvalue:
        return clip_by_value(grads, clipvalue)
    return list(grads)
