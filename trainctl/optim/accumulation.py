"""Gradient accumulation: one update from the gradients of N micro-batches.

Each micro-batch's gradient is added with a weight (its number of samples, when the loss is
a per-sample mean); the update uses the weighted mean Σ wᵢ·gᵢ / Σ wᵢ, which is exactly the
gradient of the mean loss over the union of the micro-batches, uneven last batch included
(Keras' ``gradient_accumulation_steps`` takes the plain mean, the same for equal batches).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import torch

SLOT = "grad_accum"  # the slot name of an accumulated gradient in Optimizer.state_dict


class GradientAccumulator:
    """Sums of weighted gradients by parameter name, until ``steps`` have been added.

    Attributes: ``steps`` (N ≥ 1), ``sums`` (``{name: tensor}``, parameters that received a
    gradient since the last update), ``count`` (micro-batches added), ``weight`` (Σ wᵢ).
    """

    def __init__(self, steps: int):
        if steps < 1:
            raise ValueError(f"gradient accumulation needs steps >= 1, got {steps}")
        self.steps = steps
        self.sums: dict[str, torch.Tensor] = {}
        self.count, self.weight = 0, 0.0

    @property
    def ready(self) -> bool:
        """N gradients have been added: time for an update."""
        return self.count >= self.steps

    @property
    def pending(self) -> bool:
        return self.count > 0

    def add(self, names: Sequence[str], grads: Sequence[Optional[torch.Tensor]],
            weight: float = 1.0) -> None:
        """Add ``weight``·g for each gradient (None: this parameter got none this time).
        ``weight`` is a finite Python number > 0 (not a tensor: no host sync); raises
        ValueError otherwise."""
        if isinstance(weight, torch.Tensor) or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"accumulation weight must be a number > 0, got {weight!r}")
        for name, g in zip(names, grads):
            if g is None:
                continue
            s = self.sums.get(name)
            if s is None:
                self.sums[name] = g * weight if weight != 1 else g.clone()
            else:
                s.add_(g, alpha=weight)
        self.count += 1
        self.weight += float(weight)

    def take(self, names: Sequence[str]) -> list[Optional[torch.Tensor]]:
        """The weighted mean gradient of each parameter (None if it got none), and reset."""
        out = [None if n not in self.sums else self.sums[n].div_(self.weight) for n in names]
        self.sums, self.count, self.weight = {}, 0, 0.0
        return out

    # ---- checkpoints ---------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {"count": self.count, "weight": self.weight}

    def load(self, sums: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None) -> None:
        """Restore sums (already checked and placed) and ``meta`` (count, weight)."""
        meta = meta or {}
        self.sums = dict(sums)
        self.count, self.weight = int(meta.get("count", 0)), float(meta.get("weight", 0.0))
