"""Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def sgd_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor], *,
               lr: float, momentum: float, dampening: float, nesterov: bool,
               weight_decay: float) -> None:
    """One SGD update of ``param`` in place, exactly as ``torch.optim.SGD`` (single tensor).

    g ← grad + wd·p;  b ← g on the first update, else μ·b + (1 − τ)·g;
    g ← g + μ·b (Nesterov) or b;  p ← p − lr·g.
    ``state["momentum"]`` (the buffer b, shape and dtype of ``param``) is created here.
    """
    if weight_decay != 0:
        grad = grad.add(param, alpha=weight_decay)
    if momentum != 0:
        buf = state.get("momentum")
        if buf is None:
            buf = state["momentum"] = grad.clone()
        else:
            buf.mul_(momentum).add_(grad, alpha=1 - dampening)
        grad = grad.add(buf, alpha=momentum) if nesterov else buf
    param.add_(grad, alpha=-lr)


@optimizers.register("sgd")
class SGD(Optimizer, kinds.SGD):
    """Stochastic gradient descent (Robbins & Monro 1951), with heavy-ball momentum
    (Polyak 1964), dampening, and coupled L2 weight decay (``wd·p`` added to the gradient).

    The formulas are torch.optim.SGD's (see :func:`sgd_update`); the momentum buffer starts
    at the first gradient. Nesterov momentum is the torch/Keras form of Sutskever et al.
    (2013) as reformulated by Bengio et al. (2013): the step uses ``g + μ·b`` where ``b`` is
    the already-updated buffer (case O2: p ← p²/2 from 1 with lr 0.1, μ 0.9 gives 0.81,
    0.5751, 0.327321).

    Hyperparameters: ``learning_rate`` (> 0, default 0.01), ``momentum`` (≥ 0, default 0),
    ``dampening`` τ (in [0, 1], default 0), ``nesterov`` (default False; needs momentum > 0
    and dampening 0), ``weight_decay`` (≥ 0, default 0). Slot: ``momentum`` when μ > 0.
    """

    @classmethod
    def slot_names(cls, config: kinds.SGD.Config) -> tuple[str, ...]:
        return ("momentum",) if config.momentum != 0 else ()

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        sgd_update(param, grad, state, lr=lr, momentum=c.momentum, dampening=c.dampening,
                   nesterov=c.nesterov, weight_decay=weight_decay)
