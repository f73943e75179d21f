"""Exponential moving average (EMA) of the weights, used for evaluation.

After every update, ``ema ← m·ema + (1 − m)·w`` with momentum m (Polyak & Juditsky 1992;
the form of Keras' ``use_ema``/``ema_momentum`` and of
``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn(m)``): the first update
copies the weights, so after updates giving weights w₁, …, w_t,
ema_t = m^(t−1)·w₁ + (1 − m)·Σ_{k=2..t} m^(t−k)·w_k.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import torch

from trainctl.autodiff import Variable

SLOT = "ema"  # the slot name of a shadow weight in Optimizer.state_dict


class WeightAverage:
    """Shadow copies of the parameters (``shadow``: ``{name: tensor}``, empty until the
    first :meth:`update`), with ``momentum`` in [0, 1)."""

    def __init__(self, momentum: float):
        if not 0 <= momentum < 1:
            raise ValueError(f"ema momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.shadow: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, params: Sequence[Variable]) -> None:
        """Move every shadow towards its parameter's current value (in place, no sync)."""
        for p in params:
            s = self.shadow.get(p.name)
            if s is None:
                self.shadow[p.name] = p.data.detach().clone()
            else:
                s.lerp_(p.data, 1 - self.momentum)

    @contextmanager
    def swapped(self, params: Sequence[Variable]) -> Iterator[None]:
        """Inside the block, each parameter with a shadow holds the shadow's value; the
        trained values are put back on exit (the tensors are swapped, nothing is copied)."""
        swapped = [p for p in params if p.name in self.shadow]
        for p in swapped:
            p.data, self.shadow[p.name] = self.shadow[p.name], p.data
        try:
            yield
        finally:
            for p in swapped:
                p.data, self.shadow[p.name] = self.shadow[p.name], p.data

    def load(self, shadow: Mapping[str, torch.Tensor]) -> None:
        self.shadow = dict(shadow)


def averaged_weights(weights: Mapping[str, torch.Tensor],
                     optimizer_tensors: Mapping[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """``weights`` (a checkpoint's, by name) with each replaced by its EMA shadow
    ``"<name>/ema"`` from the checkpoint's optimizer tensors, where there is one."""
    tensors = optimizer_tensors or {}
    return {name: tensors.get(f"{name}/{SLOT}", w) for name, w in weights.items()}
