"""Adam and AdamW."""

from __future__ import annotations

import torch

from trainctl.optim.base import Optimizer, optimizers
from trainctl.spec import kinds


def adam_update(param: torch.Tensor, grad: torch.Tensor, state: dict[str, torch.Tensor],
                step: int, *, lr: float, beta_1: float, beta_2: float, epsilon: float,
                weight_decay: float, amsgrad: bool, decoupled: bool) -> None:
    """One Adam/AdamW update of ``param`` in place, as torch.optim.Adam (single tensor).

    Kingma & Ba (2015), Algorithm 1, with ε added after the bias correction of v:
    m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;  (AMSGrad, Reddi et al. 2018:
    v_max ← max(v_max, v), used in place of v);
    p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε),  t = ``step`` (1 on the first update).
    Weight decay: coupled (g ← g + wd·p) or, if ``decoupled`` (Loshchilov & Hutter 2019),
    p ← p·(1 − lr·wd) before the rest. Slots ``m``, ``v`` (and ``v_max``) are created here
    with the shape and dtype of ``param``.
    """
    if not state:
        state["m"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["v"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if amsgrad:
            state["v_max"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    m, v = state["m"], state["v"]
    if weight_decay != 0:
        if decoupled:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad.add(param, alpha=weight_decay)
    m.lerp_(grad, 1 - beta_1)
    v.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
    step_size = lr / (1 - beta_1 ** step)
    bias_correction2_sqrt = (1 - beta_2 ** step) ** 0.5
    if amsgrad:
        torch.maximum(state["v_max"], v, out=state["v_max"])
        v = state["v_max"]
    denom = (v.sqrt() / bias_correction2_sqrt).add_(epsilon)
    param.addcdiv_(m, denom, value=-step_size)


@optimizers.register("adam")
class Adam(Optimizer, kinds.Adam):
    """Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1),
    in torch.optim.Adam's form: ε is added after the bias correction of v (see
    :func:`adam_update`); ``weight_decay`` is coupled L2 (wd·p added to the gradient);
    ``amsgrad`` uses the running maximum of v (Reddi et al. 2018).

    Hyperparameters: ``learning_rate`` (> 0, default 0.001), ``beta_1`` (in [0, 1), 0.9),
    ``beta_2`` (in [0, 1), 0.999), ``epsilon`` (> 0, 1e-8), ``weight_decay`` (≥ 0, 0),
    ``amsgrad`` (False). Slots: ``m``, ``v``, and ``v_max`` with amsgrad.
    """

    decoupled_weight_decay = False

    @classmethod
    def slot_names(cls, config: kinds.Adam.Config) -> tuple[str, ...]:
        return ("m", "v", "v_max") if config.amsgrad else ("m", "v")

    def update(self, param, grad, state, step, *, lr, weight_decay):
        c = self.config
        adam_update(param, grad, state, step, lr=lr, beta_1=c.beta_1, beta_2=c.beta_2,
                    epsilon=c.epsilon, weight_decay=weight_decay, amsgrad=c.amsgrad,
                    decoupled=self.decoupled_weight_decay)


@optimizers.register("adamw")
class AdamW(Adam, kinds.AdamW):
    """AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight
    Decay Regularization", Algorithm 2), as torch.optim.AdamW: p ← p·(1 − lr·wd) first,
    then the Adam update of :class:`Adam` on the plain gradient.

    Hyperparameters as :class:`Adam`, but ``weight_decay`` defaults to 0.01 (torch's).
    """

    decoupled_weight_decay = True
