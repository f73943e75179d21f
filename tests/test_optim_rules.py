"""Optimizer rules beyond torch.optim's trajectories (tests/test_optim.py): Lion against
its published update rule, defaults against torch.optim's, weight decay as each optimizer
defines it (coupled or decoupled), weight_decay_exclude and parameter groups against
torch.optim parameter groups (also under a learning-rate schedule).

torch.autograd and torch.optim are used here only as oracles.
"""

from __future__ import annotations

import math

import pytest
import torch

from trainctl.autodiff import Variable, tensor
from trainctl.errors import SpecErrors
from trainctl.optim import build_optimizer, optimizers

F64 = torch.float64


def problem():
    """A 2-layer least-squares problem with biases: {name: initial value}, loss(**values)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=gen, dtype=F64)
    y = torch.randn(16, 2, generator=gen, dtype=F64)
    init = {"dense_0/kernel": torch.randn(3, 5, generator=gen, dtype=F64) * 0.5,
            "dense_0/bias": torch.randn(5, generator=gen, dtype=F64) * 0.1,
            "dense_1/kernel": torch.randn(5, 2, generator=gen, dtype=F64) * 0.5,
            "dense_1/bias": torch.randn(2, generator=gen, dtype=F64) * 0.1}

    def loss(values):
        h = torch.tanh(x @ values["dense_0/kernel"] + values["dense_0/bias"])
        return ((h @ values["dense_1/kernel"] + values["dense_1/bias"] - y) ** 2).mean()

    return init, loss


def grads_at(loss, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """d loss / d values by torch.autograd, on copies."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in values.items()}
    return dict(zip(leaves, torch.autograd.grad(loss(leaves), list(leaves.values()))))


def variables(init):
    return [Variable(v, dtype=F64, name=k) for k, v in init.items()]


# ---- Lion: the published rule ---------------------------------------------------------
def lion_rule(p, m, g, lr, beta_1, beta_2, wd):
    """Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2:
    c ← β₁m + (1−β₁)g;  θ ← θ − η(sign(c) + λθ);  m ← β₂m + (1−β₂)g."""
    c = beta_1 * m + (1 - beta_1) * g
    p = p - lr * (torch.sign(c) + wd * p)
    m = beta_2 * m + (1 - beta_2) * g
    return p, m


@pytest.mark.parametrize("cfg", [{"learning_rate": 0.003},
                                 {"learning_rate": 0.002, "beta_1": 0.95, "beta_2": 0.98,
                                  "weight_decay": 0.5}])
def test_lion_follows_its_published_rule_for_200_steps(cfg):
    init, loss = problem()
    ours = variables(init)
    opt = build_optimizer("lion", ours, **cfg)
    hp = {"lr": cfg["learning_rate"], "beta_1": cfg.get("beta_1", 0.9),
          "beta_2": cfg.get("beta_2", 0.99), "wd": cfg.get("weight_decay", 0.0)}
    ref = {k: v.clone() for k, v in init.items()}
    moments = {k: torch.zeros_like(v) for k, v in init.items()}
    for _ in range(200):
        g = grads_at(loss, {p.name: p.data for p in ours})
        opt.step([g[p.name] for p in ours])
        g_ref = grads_at(loss, ref)
        for k in ref:
            ref[k], moments[k] = lion_rule(ref[k], moments[k], g_ref[k], **hp)
        for p in ours:
            torch.testing.assert_close(p.data, ref[p.name], rtol=1e-6, atol=1e-12)
    for p in ours:
        torch.testing.assert_close(opt.get_slot(p, "m"), moments[p.name], rtol=1e-6, atol=1e-12)
    assert loss({p.name: p.data for p in ours}) < 0.5 * loss(init)


def test_lion_step_is_the_sign():
    """Every coordinate moves by exactly lr (sign(0) = 0: no move)."""
    p = Variable([1.0, 1.0, 1.0], dtype=F64, name="w")
    opt = build_optimizer("lion", [p], learning_rate=0.25)
    opt.step([tensor([3.0, -1e-9, 0.0], dtype=F64)])
    assert p.data.tolist() == [0.75, 1.25, 1.0]


# ---- defaults ------------------------------------------------------------------------
TORCH_NAMES = {"rmsprop": (torch.optim.RMSprop, {"learning_rate": "lr", "rho": "alpha",
                                                 "epsilon": "eps"}),
               "adagrad": (torch.optim.Adagrad, {"learning_rate": "lr",
                                                 "learning_rate_decay": "lr_decay",
                                                 "epsilon": "eps"}),
               "adadelta": (torch.optim.Adadelta, {"learning_rate": "lr", "epsilon": "eps"}),
               "adamw": (torch.optim.AdamW, {"learning_rate": "lr", "epsilon": "eps"})}


@pytest.mark.parametrize("name", sorted(TORCH_NAMES))
def test_defaults_are_torch_optims(name):
    """(sgd keeps Keras' rate 0.01; torch's SGD now defaults to 0.001)"""
    cls, renamed = TORCH_NAMES[name]
    theirs = cls([torch.zeros(1, requires_grad=True)]).defaults
    config = optimizers.get(name).Config()
    for field in type(config).model_fields:
        key = renamed.get(field, field)
        if key in theirs:
            assert getattr(config, field) == theirs[key], field


# ---- weight decay: coupled or decoupled -------------------------------------------------
# One step from p = 1 with a zero gradient, lr 0.1, weight_decay 0.1. Decoupled decay
# shrinks p by lr·wd whatever the gradient; coupled decay is the gradient wd·p = 0.1 fed
# through the optimizer's own normalisation.
LR, WD = 0.1, 0.1
DECAY_CASES = [
    ("sgd", {}, 1 - LR * WD),
    ("adamw", {}, 1 - LR * WD),
    ("lion", {}, 1 - LR * WD),
    ("adam", {}, 1 - LR * 0.1 / (0.1 + 1e-8)),                    # m̂/(√v̂+ε), m̂ = √v̂ = 0.1
    ("rmsprop", {}, 1 - LR * 0.1 / (math.sqrt(0.01 * 0.01) + 1e-8)),  # s = (1−ρ)·0.1²
    ("adagrad", {}, 1 - LR * 0.1 / (0.1 + 1e-10)),
    ("adadelta", {"learning_rate": 1.0}, 1 - math.sqrt(1e-6) / math.sqrt(0.1 * 0.01 + 1e-6) * 0.1),
]


@pytest.mark.parametrize("name,extra,expected", DECAY_CASES)
def test_weight_decay_is_coupled_or_decoupled(name, extra, expected):
    p = Variable([1.0], dtype=F64, name="dense/kernel")
    opt = build_optimizer(name, [p], **{"learning_rate": LR, "weight_decay": WD, **extra})
    opt.step([tensor([0.0], dtype=F64)])
    assert p.data.item() == pytest.approx(expected, rel=1e-12)
    q = Variable([1.0], dtype=F64, name="dense/bias")  # excluded: no decay, no move
    opt = build_optimizer(name, [q], **{"learning_rate": LR, "weight_decay": WD, **extra},
                          weight_decay_exclude=["*/bias"])
    opt.step([tensor([0.0], dtype=F64)])
    assert q.data.item() == 1.0


# ---- parameter groups and weight_decay_exclude against torch.optim param groups ----------
GROUPED = [
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.2}),
    ("rmsprop", {"learning_rate": 0.005, "momentum": 0.5, "weight_decay": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "weight_decay": 0.1}),
    ("adadelta", {"learning_rate": 1.0, "weight_decay": 0.1}),
]
TORCH_CLASS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
               "adadelta": torch.optim.Adadelta}
TORCH_EXTRA = {"sgd": {"momentum": 0.9}, "rmsprop": {"momentum": 0.5}}


@pytest.mark.parametrize("name,cfg", GROUPED)
def test_groups_and_exclusions_match_torch_param_groups(name, cfg):
    """dense_1/* takes its own rate (and dense_1/kernel its own weight decay); biases are
    excluded from weight decay; the base rate halves at step 100 (a step schedule) and the
    group rates follow in proportion, as torch's StepLR scales each group."""
    lr, wd = cfg["learning_rate"], cfg["weight_decay"]
    init, loss = problem()
    ours = variables(init)
    opt = build_optimizer(name, ours, **cfg, weight_decay_exclude=["*/bias"], groups=[
        {"match": "dense_1/kernel", "learning_rate": lr / 4, "weight_decay": wd * 3},
        {"match": ["dense_1/bias", "dense_1/*"], "learning_rate": lr / 2}])
    theirs = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    ref = TORCH_CLASS[name]([
        {"params": [theirs["dense_0/kernel"]]},
        {"params": [theirs["dense_0/bias"]], "weight_decay": 0.0},
        {"params": [theirs["dense_1/kernel"]], "lr": lr / 4, "weight_decay": wd * 3},
        {"params": [theirs["dense_1/bias"]], "lr": lr / 2, "weight_decay": 0.0},
    ], lr=lr, weight_decay=wd, **TORCH_EXTRA.get(name, {}))
    schedule = torch.optim.lr_scheduler.StepLR(ref, step_size=100, gamma=0.5)
    assert opt.param_options("dense_1/bias") == (lr / 2, 0.0)
    for step in range(200):
        opt.learning_rate = lr * 0.5 ** (step // 100)
        g = grads_at(loss, {p.name: p.data for p in ours})
        opt.step([g[p.name] for p in ours])
        ref.zero_grad()
        loss(theirs).backward()
        ref.step()
        schedule.step()
        for p in ours:
            torch.testing.assert_close(p.data, theirs[p.name].detach(), rtol=1e-6, atol=1e-12)


def test_first_matching_group_wins_and_exclusion_beats_a_group():
    ps = [Variable([1.0], name=n) for n in ("a/kernel", "a/bias", "b/kernel")]
    opt = build_optimizer("adamw", ps, learning_rate=0.1, weight_decay=0.01,
                          weight_decay_exclude=["a/bias"],
                          groups=[{"match": "a/*", "weight_decay": 0.5},
                                  {"match": "*", "learning_rate": 0.2}])
    assert [opt.param_options(p) for p in ps] == [(0.1, 0.5), (0.1, 0.0), (0.2, 0.01)]
    opt.learning_rate = 0.05  # a schedule halves the base rate: every group follows
    assert [opt.param_options(p)[0] for p in ps] == [0.05, 0.05, 0.1]


def test_patterns_that_match_nothing_are_errors():
    ps = [Variable([1.0], name="dense/kernel"), Variable([1.0], name="dense/bias")]
    with pytest.raises(ValueError, match=r"weight_decay_exclude\.0: pattern '\*/bais' matches "
                                         r"no parameter \(parameters: dense/kernel, dense/bias\)"):
        build_optimizer("sgd", ps, weight_decay_exclude=["*/bais"])
    with pytest.raises(ValueError, match=r"groups\.0\.match\.1: pattern 'head/\*'"):
        build_optimizer("sgd", ps, groups=[{"match": ["dense/*", "head/*"]}])


def test_spec_pattern_errors_are_located(tmp_path):
    from test_train import SPEC, make_spec
    from trainctl.train import prepare

    text = SPEC.replace("optimizer: {type: adam, learning_rate: 0.01}",
                        "optimizer:\n  type: adam\n  weight_decay_exclude: ['*/bais']\n"
                        "  groups: [{match: 'head/*', learning_rate: 0.1}]")
    with pytest.raises(SpecErrors) as exc:
        prepare(make_spec(text), "cpu")
    messages = [str(e) for e in exc.value.errors]
    assert messages[0].startswith("tiny.yaml:19:26: optimizer.weight_decay_exclude[0]: pattern "
                                  "'*/bais' matches no parameter (parameters: dense/kernel, ")
    assert messages[1].startswith("tiny.yaml:20:20: optimizer.groups[0].match: pattern 'head/*'")


@pytest.mark.parametrize("cfg,message", [
    ({"clipnorm": 1.0, "clipvalue": 0.5}, "only one of clipnorm, global_clipnorm and clipvalue"),
    ({"global_clipnorm": 0.0}, "greater than 0"),
    ({"gradient_accumulation_steps": 0}, "greater than or equal to 1"),
    ({"ema_momentum": 1.0}, "less than 1"),
    ({"groups": [{"match": []}]}, "at least 1"),
    ({"groups": [{"match": "a", "momentum": 0.9}]}, "Extra inputs"),
    ({"weight_decay_exclude": [""]}, "at least 1 character"),
])
def test_invalid_shared_options(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer("sgd", [Variable([1.0], name="a")], **cfg)


@pytest.mark.parametrize("name,cfg", [
    ("rmsprop", {"learning_rate": 0.005, "rho": 0.9, "epsilon": 1e-6, "momentum": 0.5,
                 "centered": True, "weight_decay": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "learning_rate_decay": 0.01, "epsilon": 1e-8,
                 "initial_accumulator_value": 0.1, "weight_decay": 0.05}),
    ("adadelta", {"learning_rate": 0.5, "rho": 0.95, "epsilon": 1e-5, "weight_decay": 0.1}),
])
def test_bench_compare_torch_translates_the_optimizer(name, cfg):
    """trainctl bench --compare-torch builds the same torch.optim optimizer."""
    from trainctl.check.torch_ref import torch_optimizer

    init, loss = problem()
    ours = variables(init)
    opt = build_optimizer(name, ours, **cfg)
    theirs = {k: v.clone().requires_grad_(True) for k, v in init.items()}
    ref = torch_optimizer(opt, list(theirs.values()))
    for _ in range(20):
        g = grads_at(loss, {p.name: p.data for p in ours})
        opt.step([g[p.name] for p in ours])
        ref.zero_grad()
        loss(theirs).backward()
        ref.step()
    for p in ours:
        torch.testing.assert_close(p.data, theirs[p.name].detach(), rtol=1e-6, atol=1e-12)
