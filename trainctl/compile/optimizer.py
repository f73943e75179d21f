"""The optimizer update as a graph effect, and its fused Adam form."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from trainctl.optim import Optimizer
from trainctl.optim.adam import adam_fused_step, fused_applies


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


class AdamFused(OptimizerStep):
    """Adam/AdamW over all parameters at once: :func:`trainctl.optim.adam.adam_fused_step`,
    one torch fused kernel per group of parameters (the eager step uses the same function,
    so graph and eager give the same values). Slots, ``steps`` and ``iterations`` are kept
    in the optimizer exactly as :meth:`Optimizer.step` keeps them, so checkpoints are
    unchanged."""

    def __init__(self, step: OptimizerStep):
        super().__init__(step.optimizer, step.weight, step.check, step.lead)
        self.__name__ = "adam_fused"

    @staticmethod
    def applies(opt: Optimizer, grads: Sequence) -> bool:
        """:func:`trainctl.optim.adam.fused_applies` for the traced gradients (IR nodes
        or tensors with ``dtype`` and ``device``)."""
        return fused_applies(opt, grads)

    def apply(self, grads: list) -> None:
        adam_fused_step(self.optimizer, grads)
