"""Adagrad."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def adagrad_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
                   step: int, *, lr: float, lr_decay: float, initial_accumulator_value: float,
                   epsilon: float, weight_decay: float) -> None:
    """One Adagrad update of ``param`` in place, exactly as torch.optim.Adagrad (dense,
    single tensor).

    g ← grad + wd·p (coupled);  η = lr / (1 + (t − 1)·lr_decay), t = ``step``;
    a ← a + g²;  p ← p − η·g / (√a + ε). Slot ``accumulator`` a starts at
    ``initial_accumulator_value`` (created here, shape and dtype of ``param``).
    """
    if not state:
        state["accumulator"] = torch.full_like(param, initial_accumulator_value,
                                               memory_format=torch.preserve_format)
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    clr = lr / (1 + (step - 1) * lr_decay)
    acc = state["accumulator"]
    acc.addcmul_(grad, grad, value=1)
    param.addcdiv_(grad, acc.sqrt().add_(epsilon), value=-clr)


@optimizers.register("adagrad")
class Adagrad(Optimizer, kinds.Adagrad):
    """Adagrad (Duchi, Hazan & Singer 2011, "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", diagonal form), as torch.optim.Adagrad (see
    :func:`adagrad_update`); ``weight_decay`` is coupled L2.

    Hyperparameters (torch's defaults): ``learning_rate`` (> 0, 0.01),
    ``learning_rate_decay`` (≥ 0, 0; torch's ``lr_decay``), ``initial_accumulator_value``
    (≥ 0, 0), ``epsilon`` (> 0, 1e-10), ``weight_decay`` (≥ 0, 0). Slot: ``accumulator``.
    """

    @classmethod
    def slot_names(cls, config: kinds.Adagrad.Config) -> tuple[str, ...]:
        return ("accumulator",)

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        adagrad_update(param, grad, state, step, lr=lr, lr_decay=c.learning_rate_decay,
                       initial_accumulator_value=c.initial_accumulator_value,
                       epsilon=c.epsilon, weight_decay=weight_decay)
