"""RMSprop, with momentum and the centered variant."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def rmsprop_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], *,
                   lr: float, rho: float, epsilon: float, momentum: float, centered: bool,
                   weight_decay: float) -> None:
    """One RMSprop update of ``param`` in place, exactly as torch.optim.RMSprop (single
    tensor; ``rho`` is torch's ``alpha``).

    g ← grad + wd·p (coupled);  s ← ρ·s + (1 − ρ)·g²;  centered: ḡ ← ρ·ḡ + (1 − ρ)·g and
    d = √(s − ḡ²) + ε, else d = √s + ε;  momentum μ > 0: b ← μ·b + g/d, p ← p − lr·b;
    else p ← p − lr·g/d. ε is added outside the square root (Keras adds it inside).
    Slots (created here, zeros of the shape and dtype of ``param``): ``square_avg`` s,
    ``grad_avg`` ḡ (centered), ``momentum`` b (μ > 0).
    """
    if not state:
        state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if centered:
            state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if momentum > 0:
            state["momentum"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    square_avg = state["square_avg"]
    square_avg.mul_(rho).addcmul_(grad, grad, value=1 - rho)
    if centered:
        grad_avg = state["grad_avg"]
        grad_avg.lerp_(grad, 1 - rho)
        avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    else:
        avg = square_avg.sqrt()
    avg.add_(epsilon)
    if momentum > 0:
        buf = state["momentum"]
        buf.mul_(momentum).addcdiv_(grad, avg)
        param.add_(buf, alpha=-lr)
    else:
        param.addcdiv_(grad, avg, value=-lr)


@optimizers.register("rmsprop")
class RMSprop(Optimizer, kinds.RMSprop):
    """RMSprop (Tieleman & Hinton 2012, Lecture 6.5 of "Neural Networks for Machine
    Learning"; the centered form from Graves 2013, "Generating Sequences With Recurrent
    Neural Networks", eq. 38-45), in torch.optim.RMSprop's form (see
    :func:`rmsprop_update`); ``weight_decay`` is coupled L2.

    Hyperparameters (torch's defaults): ``learning_rate`` (> 0, 0.01), ``rho`` (in [0, 1),
    0.99), ``epsilon`` (> 0, 1e-8), ``momentum`` (≥ 0, 0), ``centered`` (false),
    ``weight_decay`` (≥ 0, 0). Slots: ``square_avg``; ``grad_avg`` when centered;
    ``momentum`` when momentum > 0.
    """

    @classmethod
    def slot_names(cls, config: kinds.RMSprop.Config) -> tuple[str, ...]:
        return (("square_avg",) + (("grad_avg",) if config.centered else ())
                + (("momentum",) if config.momentum > 0 else ()))

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        rmsprop_update(param, grad, state, lr=lr, rho=c.rho, epsilon=c.epsilon,
                       momentum=c.momentum, centered=c.centered, weight_decay=weight_decay)
