"""Lion (EvoLved Sign Momentum)."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def lion_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], *,
                lr: float, beta_1: float, beta_2: float, weight_decay: float) -> None:
    """One Lion update of ``param`` in place (Chen et al. 2023, Algorithm 2):

    c ← β₁·m + (1 − β₁)·g;  p ← p − lr·(sign(c) + λ·p);  m ← β₂·m + (1 − β₂)·g,

    with decoupled weight decay λ = ``weight_decay`` (applied as p ← p·(1 − lr·λ) first,
    the same value). sign(0) = 0. Slot ``m`` (zeros, created here).
    """
    if not state:
        state["m"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    m = state["m"]
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    param.add_(m.lerp(grad, 1 - beta_1).sign_(), alpha=-lr)
    m.lerp_(grad, 1 - beta_2)


@optimizers.register("lion")
class Lion(Optimizer, kinds.Lion):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
    arXiv:2302.06675, Algorithm 2): the update is the sign of an interpolation of the
    momentum and the gradient, so every coordinate moves by exactly lr (use a rate 3-10×
    smaller than AdamW's). ``weight_decay`` is decoupled, as in the paper. See
    :func:`lion_update`.

    Hyperparameters (the paper's defaults): ``learning_rate`` (> 0, 1e-4), ``beta_1`` (in
    [0, 1], 0.9), ``beta_2`` (in [0, 1], 0.99), ``weight_decay`` (≥ 0, 0). Slot: ``m``.
    """

    @classmethod
    def slot_names(cls, config: kinds.Lion.Config) -> tuple[str, ...]:
        return ("m",)

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        lion_update(param, grad, state, lr=lr, beta_1=c.beta_1, beta_2=c.beta_2,
                    weight_decay=weight_decay)
