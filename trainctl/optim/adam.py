"""Adam and AdamW: the per-parameter update and the fused one over all parameters."""

from __future__ import annotations

from typing import Sequence

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


def fused_applies(opt: Optimizer, grads: Sequence) -> bool:
    """Whether :func:`adam_fused_step` may update ``opt`` with ``grads``: an Adam or AdamW
    without gradient accumulation, moving average or clipping, every parameter has a
    gradient of its own dtype and device. (Coupled weight decay and AMSGrad are in the
    kernel; per-parameter rates and decays become groups.)"""
    c = getattr(opt, "config", None)
    return (isinstance(opt, Adam) and opt.accumulator is None and opt.average is None
            and c.clipnorm is None and c.global_clipnorm is None and c.clipvalue is None
            and len(grads) == len(opt.params)
            and all(g is not None and g.dtype == p.data.dtype and g.device == p.data.device
                    for p, g in zip(opt.params, grads)))


class _FusedLists:
    """What the fused kernels take besides the gradients, built once: the parameters, their
    slots and their steps as float tensors (the kernels read ``t`` from them), grouped by
    (device, dtype, rate scale, weight decay). Valid while the optimizer's ``state``,
    ``steps`` and options are the same objects, no other update ran
    (``iterations`` as this left it) and each parameter's tensor is the same."""

    def __init__(self, opt: "Adam"):
        self.state, self.steps, self.options = opt.state, opt.steps, opt._options
        self.data = [p.data for p in opt.params]
        self.names = [p.name for p in opt.params]
        slots = opt.slot_names(opt.config)
        for p, d in zip(opt.params, self.data):
            s = opt.state.setdefault(p.name, {})
            for name in slots:
                if name not in s:
                    s[name] = torch.zeros_like(d, memory_format=torch.preserve_format)
                elif s[name].stride() != d.stride():  # the kernels need one layout
                    s[name] = torch.empty_like(d).copy_(s[name])
        groups: dict[tuple, list[int]] = {}
        for i, (d, option) in enumerate(zip(self.data, opt._options)):
            groups.setdefault((d.device, d.dtype, *option), []).append(i)
        self.groups = []
        for (device, _, scale, wd), idx in groups.items():
            st = [opt.state[self.names[i]] for i in idx]
            steps = [torch.tensor(float(opt.steps.get(self.names[i], 0)), device=device)
                     for i in idx]
            self.groups.append((idx, scale, wd, [self.data[i] for i in idx],
                                [s["m"] for s in st], [s["v"] for s in st],
                                [s["v_max"] for s in st] if opt.config.amsgrad else [], steps))
        self.step_tensors = [t for g in self.groups for t in g[-1]]
        self.iterations = opt.iterations

    def valid(self, opt: "Adam") -> bool:
        return (self.iterations == opt.iterations and self.state is opt.state
                and self.steps is opt.steps and self.options is opt._options
                and all(a is p.data for a, p in zip(self.data, opt.params)))


def adam_fused_step(opt: "Adam", grads: Sequence[torch.Tensor]) -> None:
    """One Adam/AdamW update of all of ``opt``'s parameters, one torch fused kernel
    (``torch._fused_adam_`` / ``torch._fused_adamw_``) per group of parameters sharing
    device, dtype, learning rate and weight decay: the formula of :func:`adam_update`
    (torch.optim.Adam(fused=True)'s kernel; the same values up to rounding). ``grads``:
    one torch tensor per parameter, of its shape, dtype and device (see
    :func:`fused_applies`). Slots (``m``, ``v``, ``v_max``), ``opt.steps`` and
    ``opt.iterations`` change exactly as :meth:`Optimizer.step` changes them, so
    checkpoints and resumption are the same; the lists the kernels take are cached. (No
    ``torch.no_grad``: trainctl's torch tensors never require grad.)"""
    cache = getattr(opt, "_fused", None)
    if cache is None or not cache.valid(opt):
        cache = opt._fused = _FusedLists(opt)
    torch._foreach_add_(cache.step_tensors, 1.0)
    c = opt.config
    kernel = torch._fused_adamw_ if opt.decoupled_weight_decay else torch._fused_adam_
    for idx, scale, wd, params, ms, vs, vmax, steps in cache.groups:
        gs = [grads[i] for i in idx]
        # the CPU kernel walks memory linearly: a gradient laid out differently from its
        # parameter (e.g. a transposed view) would be read in the wrong order
        gs = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)
              for g, p in zip(gs, params)]
        kernel(params, gs, ms, vs, vmax, steps, lr=opt.learning_rate * scale, beta1=c.beta_1,
               beta2=c.beta_2, weight_decay=wd, eps=c.epsilon, amsgrad=c.amsgrad,
               maximize=False, grad_scale=None, found_inf=None)
    steps = opt.steps
    for name in cache.names:
        steps[name] = steps.get(name, 0) + 1
    opt.iterations += 1
    cache.iterations = opt.iterations


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

    def _apply(self, grads):
        if fused_applies(self, grads):
            adam_fused_step(self, grads)
        else:
            super()._apply(grads)

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
