"""Optimizer tests: golden cases O1/O2/R1 and trajectories against torch.optim.

The expected values of O1, O2 and R1 are copied from the project's case files
(cases/optim.md, cases/resume.md). torch.autograd and torch.optim are used here only as
oracles.
"""

from __future__ import annotations

import pytest
import torch

from trainctl.autodiff import Variable, tensor
from trainctl.optim import SGD, Adam, AdamW, build_optimizer, optimizers

F64 = torch.float64


def var(values, name="p"):
    return Variable(values, dtype=F64, name=name)


def g64(values):
    return torch.tensor(values, dtype=F64)


# ---- O1: Adam, Adam with L2 weight decay, AdamW (injected gradients) -----------------
O1 = [
    ("adam", {}, [0.900000002, 0.8733662987078463, 0.8393233849166541]),
    ("adam", {"weight_decay": 0.1}, [0.9000000016666666, 0.8544413674617625, 0.8005694720858495]),
    ("adamw", {"weight_decay": 0.1}, [0.890000002, 0.8544662986878463, 0.8118787219097756]),
    ("adam", {"epsilon": 0.1}, [0.9166666666666666, 0.895411060230342, 0.869274057388063]),
]


@pytest.mark.parametrize("name,extra,expected", O1)
def test_case_o1(name, extra, expected):
    p = var(1.0)
    cfg = {"learning_rate": 0.1, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, **extra}
    opt = build_optimizer(name, [p], **cfg)
    for g, want in zip([0.5, -0.25, 0.125], expected):
        opt.step([tensor(g, dtype=F64)])
        assert p.data.item() == pytest.approx(want, rel=0, abs=1e-12)


# ---- O2: momentum and Nesterov on p²/2 -----------------------------------------------
O2 = [
    ({}, [0.9, 0.81, 0.729]),
    ({"momentum": 0.9}, [0.9, 0.72, 0.486]),
    ({"momentum": 0.9, "nesterov": True}, [0.81, 0.5751, 0.327321]),
]


@pytest.mark.parametrize("extra,expected", O2)
def test_case_o2(extra, expected):
    p = var(1.0)
    opt = build_optimizer("sgd", [p], learning_rate=0.1, dampening=0.0, **extra)
    for want in expected:
        p.grad = tensor(p.data.clone())  # gradient of p²/2 is p
        opt.step()
        assert p.data.item() == pytest.approx(want, rel=0, abs=1e-12)


# ---- trajectories against torch.optim ------------------------------------------------
CONFIGS = [
    ("sgd", {"learning_rate": 0.05}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True, "beta_1": 0.8, "epsilon": 1e-6}),
    ("adamw", {"learning_rate": 0.01}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.2, "amsgrad": True}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.005, "momentum": 0.9, "rho": 0.9, "weight_decay": 0.05}),
    ("rmsprop", {"learning_rate": 0.005, "centered": True, "epsilon": 1e-6}),
    ("rmsprop", {"learning_rate": 0.002, "centered": True, "momentum": 0.5, "weight_decay": 0.1}),
    ("adagrad", {"learning_rate": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "learning_rate_decay": 0.01,
                 "initial_accumulator_value": 0.1, "weight_decay": 0.05, "epsilon": 1e-8}),
    ("adadelta", {}),
    ("adadelta", {"learning_rate": 0.5, "rho": 0.95, "epsilon": 1e-5, "weight_decay": 0.1}),
]


def torch_oracle(name, params, cfg):
    """The torch.optim optimizer equivalent to ours (Keras names → torch names)."""
    lr = cfg.get("learning_rate", 1.0 if name == "adadelta" else None)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.get("momentum", 0.0),
                               dampening=cfg.get("dampening", 0.0),
                               nesterov=cfg.get("nesterov", False),
                               weight_decay=cfg.get("weight_decay", 0.0))
    wd = cfg.get("weight_decay", 0.0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.get("rho", 0.99),
                                   eps=cfg.get("epsilon", 1e-8), weight_decay=wd,
                                   momentum=cfg.get("momentum", 0.0),
                                   centered=cfg.get("centered", False))
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, lr_decay=cfg.get("learning_rate_decay", 0.0),
                                   weight_decay=wd, eps=cfg.get("epsilon", 1e-10),
                                   initial_accumulator_value=cfg.get(
                                       "initial_accumulator_value", 0.0))
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=cfg.get("rho", 0.9),
                                    eps=cfg.get("epsilon", 1e-6), weight_decay=wd)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    wd = cfg.get("weight_decay", 0.0 if name == "adam" else 0.01)
    return cls(params, lr=lr, betas=(cfg.get("beta_1", 0.9), cfg.get("beta_2", 0.999)),
               eps=cfg.get("epsilon", 1e-8), weight_decay=wd, amsgrad=cfg.get("amsgrad", False))


def problem():
    """A 2-layer least-squares problem: initial weights and loss(w1, w2) -> scalar."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=gen, dtype=F64)
    y = torch.randn(16, 2, generator=gen, dtype=F64)
    w1 = torch.randn(3, 5, generator=gen, dtype=F64) * 0.5
    w2 = torch.randn(5, 2, generator=gen, dtype=F64) * 0.5

    def loss(a, b):
        return ((torch.tanh(x @ a) @ b - y) ** 2).mean()

    return [w1, w2], loss


def autograd_grads(loss, values):
    """d loss / d values, computed by torch.autograd on copies."""
    leaves = [v.clone().requires_grad_(True) for v in values]
    return list(torch.autograd.grad(loss(*leaves), leaves))


STEPS = 200


@pytest.mark.parametrize("name,cfg", CONFIGS)
def test_trajectory_matches_torch_optim(name, cfg):
    """200 steps on the same problem follow torch.optim's trajectory to 1e-6 relative."""
    init, loss = problem()
    ours = [var(w, name=f"dense_{i}/kernel") for i, w in enumerate(init)]
    opt = build_optimizer(name, ours, **cfg)
    theirs = [w.clone().requires_grad_(True) for w in init]
    ref = torch_oracle(name, theirs, cfg)
    for _ in range(STEPS):
        for p, g in zip(ours, autograd_grads(loss, [p.data for p in ours])):
            p.grad = tensor(g)
        opt.step()
        opt.zero_grad()
        ref.zero_grad()
        loss(*theirs).backward()
        ref.step()
        for p, t in zip(ours, theirs):
            torch.testing.assert_close(p.data, t.detach(), rtol=1e-6, atol=1e-12)
    assert opt.iterations == STEPS
    assert all(p.grad is None for p in ours)
    assert loss(*[p.data for p in ours]) < loss(*init)


@pytest.mark.parametrize("name,cfg", [CONFIGS[i] for i in (1, 7, 9, 13, 15, 17)])
def test_none_gradient_skips_parameter_like_torch(name, cfg):
    init = [g64([1.0, -2.0]), g64([0.5])]
    ours = [var(v, name=f"p{i}") for i, v in enumerate(init)]
    theirs = [v.clone().requires_grad_(True) for v in init]
    opt, ref = build_optimizer(name, ours, **cfg), torch_oracle(name, theirs, cfg)
    grads = [[g64([0.3, -0.1]), g64([0.2])], [g64([0.1, 0.4]), None], [None, g64([-0.5])],
             [g64([0.2, 0.2]), g64([0.1])]]
    for step in grads:
        opt.step([None if g is None else tensor(g) for g in step])
        for t, g in zip(theirs, step):
            t.grad = None if g is None else g.clone()
        ref.step()
        for p, t in zip(ours, theirs):
            torch.testing.assert_close(p.data, t.detach(), rtol=1e-12, atol=1e-15)
    assert opt.steps == {"p0": 3, "p1": 3} and opt.iterations == 4


# ---- state_dict / load_state_dict ----------------------------------------------------
def fresh_copy(params):
    return [var(p.data.clone(), name=p.name) for p in params]


@pytest.mark.parametrize("name,cfg", CONFIGS)
def test_state_dict_round_trip_is_bit_identical(name, cfg):
    init, loss = problem()
    a = [var(w, name=f"dense_{i}/kernel") for i, w in enumerate(init)]
    opt_a = build_optimizer(name, a, **cfg)

    def run(opt, params, n):
        for _ in range(n):
            opt.step([tensor(g) for g in autograd_grads(loss, [p.data for p in params])])

    run(opt_a, a, 5)
    tensors, meta = opt_a.state_dict()
    b = fresh_copy(a)
    opt_b = build_optimizer(name, b)  # defaults: the saved config replaces them
    opt_b.load_state_dict({k: v.clone() for k, v in tensors.items()}, dict(meta))
    assert opt_b.get_config() == opt_a.get_config() and opt_b.iterations == 5
    run(opt_a, a, 5)
    run(opt_b, b, 5)
    for pa, pb in zip(a, b):
        assert torch.equal(pa.data, pb.data)


def test_state_dict_layout():
    import json

    p = var([[1.0, 2.0]], name="dense/kernel")
    opt = Adam([p], learning_rate=0.1, amsgrad=True)
    assert opt.state_dict() == ({}, {"format": 1, "optimizer": "adam", "iterations": 0,
                                     "learning_rate": 0.1, "steps": {},
                                     "config": opt.get_config()})
    opt.step([tensor([[0.5, 0.5]], dtype=F64)])
    opt.learning_rate = 0.05
    tensors, meta = opt.state_dict()
    assert sorted(tensors) == ["dense/kernel/m", "dense/kernel/v", "dense/kernel/v_max"]
    assert all(t.dtype == F64 and t.shape == (1, 2) for t in tensors.values())
    assert json.loads(json.dumps(meta)) == meta
    assert meta["iterations"] == 1 and meta["learning_rate"] == 0.05
    assert meta["steps"] == {"dense/kernel": 1}
    tensors["dense/kernel/m"].add_(1.0)  # a copy, not the live slot
    assert not torch.equal(opt.state["dense/kernel"]["m"], tensors["dense/kernel/m"])


def saved_adam():
    p = var([1.0, 2.0], name="dense/kernel")
    opt = Adam([p], learning_rate=0.1)
    opt.step([tensor([0.5, 0.5], dtype=F64)])
    return opt.state_dict()


@pytest.mark.parametrize("edit,message", [
    (lambda t, m: t.pop("dense/kernel/v"), "lacks slot 'dense/kernel/v'"),
    (lambda t, m: t.update({"dense/kernel/v": torch.zeros(3, dtype=F64)}),
     "'dense/kernel/v' is float64[3], but parameter 'dense/kernel' is float64[2]"),
    (lambda t, m: t.update({"dense/kernel/m": torch.zeros(2)}), "'dense/kernel/m' is float32[2]"),
    (lambda t, m: t.update({"dense/bias/m": torch.zeros(2, dtype=F64)}),
     "unexpected slots: dense/bias/m"),
    (lambda t, m: m["steps"].update({"dense/bias": 1}), "lacks: dense/bias"),
    (lambda t, m: m.update(optimizer="sgd"), "is for 'sgd', not 'adam'"),
    (lambda t, m: m.update(format=7), "format 7"),
    (lambda t, m: m.pop("iterations"), "iterations"),
])
def test_load_state_dict_errors_name_the_slot(edit, message):
    from trainctl.errors import CheckpointError

    tensors, meta = saved_adam()
    edit(tensors, meta)
    p = var([0.0, 0.0], name="dense/kernel")
    opt = Adam([p], learning_rate=0.3)
    with pytest.raises(CheckpointError, match=message.replace("[", r"\[").replace("]", r"\]")):
        opt.load_state_dict(tensors, meta)
    assert opt.state == {} and opt.iterations == 0 and opt.learning_rate == 0.3


# ---- R1: adam with a step schedule, uninterrupted and resumed ------------------------
R1_RATES = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
R1_FINAL = [1.348676988806097, -1.650807689454836]


def r1_steps(opt, p, rates):
    for lr in rates:
        opt.learning_rate = lr
        p.grad = tensor(2 * (p.data - g64([3.0, 1.0])))  # d/dp sum((p - [3, 1])²)
        opt.step()
        opt.zero_grad()


def test_case_r1_uninterrupted():
    p = var([1.0, -2.0])
    r1_steps(Adam([p], learning_rate=0.1), p, R1_RATES)
    assert p.data.tolist() == pytest.approx(R1_FINAL, rel=0, abs=1e-12)


def test_case_r1_resumed_is_bit_identical():
    p_full = var([1.0, -2.0])
    r1_steps(Adam([p_full], learning_rate=0.1), p_full, R1_RATES)

    p = var([1.0, -2.0])
    opt = Adam([p], learning_rate=0.1)
    r1_steps(opt, p, R1_RATES[:3])
    tensors, meta = opt.state_dict()
    p2 = var(p.data.clone())
    opt2 = Adam([p2], learning_rate=0.1)
    opt2.load_state_dict(tensors, meta)
    r1_steps(opt2, p2, R1_RATES[3:])
    assert torch.equal(p2.data, p_full.data)
    assert p2.data.tolist() == pytest.approx(R1_FINAL, rel=0, abs=1e-12)


# ---- API details ---------------------------------------------------------------------
def test_registry_and_defaults():
    assert optimizers.names() == ["adadelta", "adagrad", "adam", "adamw", "lion", "rmsprop",
                                  "sgd"]
    p = var([1.0])
    common = {"clipnorm": None, "global_clipnorm": None, "clipvalue": None,
              "weight_decay_exclude": [], "groups": [], "gradient_accumulation_steps": 1,
              "use_ema": False, "ema_momentum": 0.99}
    assert build_optimizer("sgd", [p]).get_config() == {
        "learning_rate": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
        "weight_decay": 0.0, **common}
    assert build_optimizer("adam", [p]).get_config() == {
        "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8,
        "weight_decay": 0.0, "amsgrad": False, **common}
    defaults = {name: {k: v for k, v in build_optimizer(name, [p]).get_config().items()
                       if k not in common}
                for name in ("rmsprop", "adagrad", "adadelta", "lion")}
    assert defaults == {  # torch.optim's defaults; lion: the paper's
        "rmsprop": {"learning_rate": 0.01, "rho": 0.99, "epsilon": 1e-8, "momentum": 0.0,
                    "centered": False, "weight_decay": 0.0},
        "adagrad": {"learning_rate": 0.01, "learning_rate_decay": 0.0,
                    "initial_accumulator_value": 0.0, "epsilon": 1e-10, "weight_decay": 0.0},
        "adadelta": {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6, "weight_decay": 0.0},
        "lion": {"learning_rate": 1e-4, "beta_1": 0.9, "beta_2": 0.99, "weight_decay": 0.0}}
    assert AdamW([p]).config.weight_decay == 0.01
    assert type(build_optimizer("adamw", [p])) is AdamW
    assert SGD([p], SGD.Config(momentum=0.5), learning_rate=0.2).get_config()["momentum"] == 0.5


def test_unknown_name_lists_close_names():
    from trainctl.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="did you mean 'adam'"):
        build_optimizer("adma", [var([1.0])])


@pytest.mark.parametrize("name,cfg", [
    ("sgd", {"learning_rate": 0.0}), ("sgd", {"learning_rate": -1.0}),
    ("sgd", {"learning_rate": float("inf")}), ("sgd", {"learning_rate": True}),
    ("sgd", {"momentum": -0.1}), ("sgd", {"weight_decay": -0.1}),
    ("sgd", {"nesterov": True}), ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}),
    ("adam", {"beta_1": 1.0}), ("adam", {"beta_2": -0.1}), ("adam", {"epsilon": 0.0}),
    ("adam", {"momentum": 0.9}), ("adamw", {"learning_rate": "fast"}),
])
def test_invalid_config(name, cfg):
    with pytest.raises(ValueError):
        build_optimizer(name, [var([1.0])], **cfg)


def test_bad_parameter_lists_and_gradients():
    from trainctl.errors import ShapeError

    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(ValueError, match="unique.*w"):
        Adam([var([1.0], name="w"), var([2.0], name="w")])
    opt = SGD([var([1.0, 2.0], name="w")])
    with pytest.raises(ValueError, match="2 gradients for 1"):
        opt.step([None, None])
    with pytest.raises(ShapeError, match="'w'"):
        opt.step([tensor([1.0, 2.0, 3.0], dtype=F64)])
    with pytest.raises(ValueError):
        opt.learning_rate = -0.1


def test_step_does_not_sync(monkeypatch):
    p = var([1.0, 2.0], name="w")
    opt = Adam([p], learning_rate=0.1, amsgrad=True, weight_decay=0.1)

    def no_item(self):
        raise AssertionError(".item() called in a step")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    monkeypatch.setattr(torch.Tensor, "tolist", no_item)
    for _ in range(3):
        opt.step([tensor([0.5, -0.5], dtype=F64)])
