"""The optimizer update as a graph effect, and its batched (``_foreach_*``) Adam form."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from trainctl.optim import Optimizer
from trainctl.optim.adam import Adam


class OptimizerStep:
    """``optimizer.step(grads, weight=weight)`` as a callable on torch gradients (None
    for a parameter without gradient): the ``optimizer_update`` node of a traced step.
    The learning rate, schedule and slots are read when it runs.

    ``check`` (optional) is called first as ``check(*lead, grads)`` with the first
    ``lead`` tensors of the call (e.g. loss and batch for a non-finite guard); the update
    is skipped when it returns False.
    """

    def __init__(self, optimizer: Optimizer, weight: float = 1.0, check: Callable | None = None,
                 lead: int = 0):
        self.optimizer, self.weight, self.check, self.lead = optimizer, weight, check, lead
        self.__name__ = f"{type(optimizer).__name__}_step"

    def __call__(self, *tensors: torch.Tensor | None) -> None:
        lead, grads = tensors[:self.lead], list(tensors[self.lead:])
        if self.check is None or self.check(*lead, grads):
            self.apply(grads)

    def apply(self, grads: list) -> None:
        self.optimizer.step(grads, weight=self.weight)

    def __repr__(self) -> str:
        guard = ", checked" if self.check is not None else ""
        return f"<{type(self.optimizer).__name__}.step weight={self.weight}{guard}>"


class AdamForeach(OptimizerStep):
    """Adam/AdamW over all parameters at once, each line of
    :func:`trainctl.optim.adam.adam_update` one ``torch._foreach_*`` call (per-parameter
    learning rates as scalar lists). Slots, ``steps`` and ``iterations`` are kept in the
    optimizer exactly as :meth:`Optimizer.step` keeps them, so checkpoints are unchanged."""

    def __init__(self, step: OptimizerStep):
        super().__init__(step.optimizer, step.weight, step.check, step.lead)
        self.__name__ = "adam_foreach"

    @staticmethod
    def applies(opt: Optimizer, grads: Sequence) -> bool:
        """Plain Adam/AdamW: no accumulation, moving average, clipping, amsgrad or
        coupled weight decay; every parameter has a gradient."""
        c = getattr(opt, "config", None)
        return (isinstance(opt, Adam) and opt.accumulator is None and opt.average is None
                and c.clipnorm is None and c.global_clipnorm is None and c.clipvalue is None
                and not c.amsgrad and all(g is not None for g in grads)
                and (opt.decoupled_weight_decay or all(wd == 0 for _, wd in opt._options)))

    @torch.no_grad()
    def apply(self, grads: list) -> None:
        opt, c = self.optimizer, self.optimizer.config
        params = [p.data for p in opt.params]
        steps = [opt.steps.get(p.name, 0) + 1 for p in opt.params]
        lrs = [opt.learning_rate * scale for scale, _ in opt._options]
        states = [opt.state.setdefault(p.name, {}) for p in opt.params]
        for p, s in zip(params, states):
            if not s:
                s["m"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["v"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        ms, vs = [s["m"] for s in states], [s["v"] for s in states]
        if opt.decoupled_weight_decay:
            for p, lr, (_, wd) in zip(params, lrs, opt._options):
                if wd != 0:
                    p.mul_(1 - lr * wd)
        b1, b2 = c.beta_1, c.beta_2
        torch._foreach_lerp_(ms, grads, 1 - b1)
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, grads, grads, 1 - b2)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, [(1 - b2 ** t) ** 0.5 for t in steps])
        torch._foreach_add_(denom, c.epsilon)
        step_sizes = [-lr / (1 - b1 ** t) for lr, t in zip(lrs, steps)]
        torch._foreach_addcdiv_(params, ms, denom, step_sizes)
        for p, t in zip(opt.params, steps):
            opt.steps[p.name] = t
        opt.iterations += 1
