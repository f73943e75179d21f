"""Adadelta."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def adadelta_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], *,
                    lr: float, rho: float, epsilon: float, weight_decay: float) -> None:
    """One Adadelta update of ``param`` in place, exactly as torch.optim.Adadelta (single
    tensor).

    g ← grad + wd·p (coupled);  s ← ρ·s + (1 − ρ)·g²;  Δ = √(u + ε) / √(s + ε) · g;
    u ← ρ·u + (1 − ρ)·Δ²;  p ← p − lr·Δ. Slots (zeros of the shape and dtype of
    ``param``, created here): ``square_avg`` s and ``acc_delta`` u.
    """
    if not state:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["acc_delta"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    square_avg, acc_delta = state["square_avg"], state["acc_delta"]
    square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    std = square_avg.add(epsilon).sqrt_()
    delta = acc_delta.add(epsilon).sqrt_().div_(std).mul_(grad)
    acc_delta.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    param.add_(delta, alpha=-lr)


@optimizers.register("adadelta")
class Adadelta(Optimizer, kinds.Adadelta):
    """Adadelta (Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method", Algorithm 1),
    with torch.optim.Adadelta's learning rate multiplying the step (see
    :func:`adadelta_update`); ``weight_decay`` is coupled L2.

    Hyperparameters (torch's defaults): ``learning_rate`` (> 0, 1.0), ``rho`` (in [0, 1],
    0.9), ``epsilon`` (> 0, 1e-6), ``weight_decay`` (≥ 0, 0). Slots: ``square_avg``,
    ``acc_delta``.
    """

    @classmethod
    def slot_names(cls, config: kinds.Adadelta.Config) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        adadelta_update(param, grad, state, lr=lr, rho=c.rho, epsilon=c.epsilon,
                        weight_decay=weight_decay)
