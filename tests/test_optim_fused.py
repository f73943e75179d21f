"""The fused Adam/AdamW update (trainctl.optim.adam.adam_fused_step) against
torch.optim.Adam(fused=True), against the per-parameter formula in float64, and its
bookkeeping (steps, slots, checkpoints). torch.optim is used here only as an oracle."""

from __future__ import annotations

import pytest
import torch

from trainctl.autodiff import Variable, tensor
from trainctl.optim import adam as adam_mod
from trainctl.optim import build_optimizer
from trainctl.optim.adam import adam_fused_step, adam_update, fused_applies

SHAPES = [(6, 5), (5,), (5, 3), (3,)]
NAMES = ["dense/kernel", "dense/bias", "out/kernel", "out/bias"]


def grads_at(step: int, dtype):
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]


def init(dtype):
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in SHAPES]


def ours(name, dtype, **cfg):
    params = [Variable(v, dtype=dtype, name=n) for v, n in zip(init(dtype), NAMES)]
    return params, build_optimizer(name, params, **cfg)


CASES = [
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", {"learning_rate": 0.02, "weight_decay": 0.2, "beta_1": 0.8}),
]


@pytest.mark.parametrize("name,cfg", CASES)
def test_fused_step_is_torch_fused_adam(name, cfg, monkeypatch):
    """200 float32 steps equal torch.optim.Adam/AdamW(fused=True) bit for bit; the
    per-parameter update is never called (the fused path is the one taken)."""
    def no_single(*a, **k):
        raise AssertionError("per-parameter update used")

    monkeypatch.setattr(adam_mod, "adam_update", no_single)
    params, opt = ours(name, torch.float32, **cfg)
    theirs = [v.clone() for v in init(torch.float32)]
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    ref = cls(theirs, lr=cfg["learning_rate"], betas=(cfg.get("beta_1", 0.9), 0.999),
              eps=1e-8, weight_decay=cfg.get("weight_decay", 0.0 if name == "adam" else 0.01),
              amsgrad=cfg.get("amsgrad", False), fused=True)
    for step in range(200):
        gs = grads_at(step, torch.float32)
        opt.step([tensor(g) for g in gs])
        for t, g in zip(theirs, gs):
            t.grad = g.clone()
        ref.step()
    for p, t in zip(params, theirs):
        torch.testing.assert_close(p.data, t, rtol=0, atol=0)
    assert opt.iterations == 200 and opt.steps == {n: 200 for n in NAMES}


@pytest.mark.parametrize("name,cfg", CASES)
def test_fused_step_matches_the_formula_in_float64(name, cfg):
    """200 float64 steps of the fused kernel equal the per-parameter formula
    (:func:`adam_update`) to 1e-12 relative, slots included."""
    params, opt = ours(name, torch.float64, **cfg)
    ref = [v.clone() for v in init(torch.float64)]
    states = [{} for _ in ref]
    wd = cfg.get("weight_decay", 0.0 if name == "adam" else 0.01)
    for step in range(1, 201):
        gs = grads_at(step, torch.float64)
        assert fused_applies(opt, gs)
        adam_fused_step(opt, gs)
        for p, g, s in zip(ref, gs, states):
            adam_update(p, g, s, step, lr=cfg["learning_rate"], beta_1=cfg.get("beta_1", 0.9),
                        beta_2=0.999, epsilon=1e-8, weight_decay=wd,
                        amsgrad=cfg.get("amsgrad", False), decoupled=name == "adamw")
    for p, r, s in zip(params, ref, states):
        torch.testing.assert_close(p.data, r, rtol=1e-12, atol=1e-15)
        for slot, t in s.items():
            torch.testing.assert_close(opt.get_slot(p, slot), t, rtol=1e-12, atol=1e-15)


def test_groups_and_exclusions_get_their_own_rate_and_decay():
    """Parameters with another learning rate or weight decay (groups,
    ``weight_decay_exclude``) are updated with theirs: as torch.optim.AdamW(fused=True)
    with the same parameter groups."""
    cfg = {"learning_rate": 0.01, "weight_decay": 0.1, "weight_decay_exclude": ["*/bias"],
           "groups": [{"match": "out/*", "learning_rate": 0.05}]}
    params, opt = ours("adamw", torch.float32, **cfg)
    t = [v.clone() for v in init(torch.float32)]
    ref = torch.optim.AdamW([{"params": [t[0]]}, {"params": [t[1]], "weight_decay": 0.0},
                             {"params": [t[2]], "lr": 0.05},
                             {"params": [t[3]], "lr": 0.05, "weight_decay": 0.0}],
                            lr=0.01, weight_decay=0.1, fused=True)
    for step in range(20):
        gs = grads_at(step, torch.float32)
        opt.step([tensor(g) for g in gs])
        for x, g in zip(t, gs):
            x.grad = g.clone()
        ref.step()
    for p, x in zip(params, t):
        torch.testing.assert_close(p.data, x, rtol=0, atol=0)


def test_a_transposed_gradient_is_read_in_the_parameter_layout():
    """The CPU kernel walks memory linearly; a gradient given as a transposed view must
    update the parameter as its contiguous copy does."""
    a, opt_a = ours("adam", torch.float32, learning_rate=0.1)
    b, opt_b = ours("adam", torch.float32, learning_rate=0.1)
    gs = grads_at(0, torch.float32)
    views = [g.t().contiguous().t() if g.dim() == 2 else g for g in gs]
    assert not views[0].is_contiguous()
    adam_fused_step(opt_a, views)
    adam_fused_step(opt_b, gs)
    for p, q in zip(a, b):
        torch.testing.assert_close(p.data, q.data, rtol=0, atol=0)


def test_cached_steps_follow_skipped_parameters_and_checkpoints():
    """Steps where a parameter has no gradient (per-parameter path) and a state loaded
    from a checkpoint between fused steps give the same values as torch.optim."""
    params, opt = ours("adam", torch.float64, learning_rate=0.05)
    theirs = [v.clone() for v in init(torch.float64)]
    ref = torch.optim.Adam(theirs, lr=0.05)
    for step in range(12):
        gs = grads_at(step, torch.float64)
        if step in (3, 7):
            gs[1] = None
        opt.step([None if g is None else tensor(g) for g in gs])
        for t, g in zip(theirs, gs):
            t.grad = None if g is None else g.clone()
        ref.step()
        if step == 5:  # resume from a checkpoint into a fresh optimizer
            tensors, meta = opt.state_dict()
            params = [Variable(p.data.clone(), name=p.name) for p in params]
            opt = build_optimizer("adam", params)
            opt.load_state_dict(tensors, meta)
    for p, t in zip(params, theirs):
        torch.testing.assert_close(p.data, t, rtol=1e-12, atol=1e-15)
    assert opt.steps == {"dense/kernel": 12, "dense/bias": 10, "out/kernel": 12, "out/bias": 12}
    assert opt.iterations == 12 and set(opt.state["dense/bias"]) == {"m", "v"}


def test_fused_applies_conditions():
    params, opt = ours("adam", torch.float32, learning_rate=0.1)
    gs = grads_at(0, torch.float32)
    assert fused_applies(opt, gs)
    assert not fused_applies(opt, gs[:-1] + [None])
    assert not fused_applies(opt, gs[:-1] + [gs[-1].double()])
    for extra in ({"clipnorm": 1.0}, {"use_ema": True}, {"gradient_accumulation_steps": 2}):
        assert not fused_applies(ours("adam", torch.float32, **extra)[1], gs)
    assert not fused_applies(build_optimizer("sgd", params, learning_rate=0.1), gs)
