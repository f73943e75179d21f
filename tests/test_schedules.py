"""Learning-rate schedules against torch.optim.lr_scheduler, rate by rate.

torch's scheduler is stepped once per count (update or epoch) and its rate read before each
step; ours gives the rate for the count directly. torch's chainable forms accumulate
rounding (a product per step), so rates agree to 1e-12 relative, not bit for bit."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import lr_scheduler as tls

from trainctl.autodiff import Variable
from trainctl.optim import SGD
from trainctl.optim.schedules import build_schedule, schedules
from trainctl.spec.kinds import schedules as kinds

BASE = 0.1


def ours(name: str, n: int, base: float = BASE, **options):
    opt = SGD([Variable(torch.zeros(1), name="w")], learning_rate=base)
    kind = kinds.schedule_kinds.get(name)
    config = kind.defaults(kind.Config(**options), None)
    s = build_schedule(name, config, opt)
    return [s.rate(t, t) for t in range(n)]


def theirs(make, n: int, base: float = BASE):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    rates = []
    for _ in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def warm(first, second, w):
    return lambda o: tls.SequentialLR(o, [tls.LinearLR(o, start_factor=first, total_iters=w),
                                          second(o)], milestones=[w])


CASES = [
    ("step", {"step_size": 3, "gamma": 0.5}, lambda o: tls.StepLR(o, 3, gamma=0.5), 20),
    ("multistep", {"milestones": [2, 5, 9], "gamma": 0.3},
     lambda o: tls.MultiStepLR(o, [2, 5, 9], gamma=0.3), 14),
    ("exponential", {"gamma": 0.9}, lambda o: tls.ExponentialLR(o, 0.9), 30),
    ("cosine", {"decay_steps": 20, "min_learning_rate": 1e-4},
     lambda o: tls.CosineAnnealingLR(o, T_max=20, eta_min=1e-4), 21),
    ("cosine", {"decay_steps": 20, "min_learning_rate": 1e-4, "warmup_steps": 5,
                "warmup_start_factor": 0.1},
     warm(0.1, lambda o: tls.CosineAnnealingLR(o, T_max=20, eta_min=1e-4), 5), 26),
    ("linear_warmup", {"warmup_steps": 4, "warmup_start_factor": 0.2},
     lambda o: tls.LinearLR(o, start_factor=0.2, total_iters=4), 10),
    ("step", {"step_size": 2, "gamma": 0.5, "warmup_steps": 3, "warmup_start_factor": 0.25},
     warm(0.25, lambda o: tls.StepLR(o, 2, gamma=0.5), 3), 12),
    ("polynomial", {"decay_steps": 10, "power": 2.0},
     lambda o: tls.PolynomialLR(o, total_iters=10, power=2.0), 15),
    ("polynomial", {"decay_steps": 7}, lambda o: tls.PolynomialLR(o, total_iters=7), 9),
    ("one_cycle", {"total_steps": 50},
     lambda o: tls.OneCycleLR(o, max_lr=BASE, total_steps=50, cycle_momentum=False), 50),
    ("one_cycle", {"total_steps": 40, "max_learning_rate": 0.3, "pct_start": 0.25,
                   "anneal_strategy": "linear", "div_factor": 10.0, "final_div_factor": 100.0},
     lambda o: tls.OneCycleLR(o, max_lr=0.3, total_steps=40, pct_start=0.25,
                              anneal_strategy="linear", div_factor=10.0,
                              final_div_factor=100.0, cycle_momentum=False), 40),
    ("one_cycle", {"total_steps": 30, "three_phase": True},
     lambda o: tls.OneCycleLR(o, max_lr=BASE, total_steps=30, three_phase=True,
                              cycle_momentum=False), 30),
]


@pytest.mark.parametrize("name, options, make, n", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rate_at_every_step_matches_torch(name, options, make, n):
    got, want = ours(name, n, **options), theirs(make, n)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert len(set(round(r, 12) for r in want)) > 1  # the schedule does change the rate


def test_warmup_from_zero_and_constant():
    assert ours("constant", 4) == [BASE] * 4
    assert ours("constant", 6, warmup_steps=4) == pytest.approx([0, 0.025, 0.05, 0.075, 0.1, 0.1])


def test_cosine_and_polynomial_stay_at_their_minimum_after_the_decay():
    rates = ours("cosine", 30, decay_steps=10, min_learning_rate=0.01)
    assert rates[10:] == [pytest.approx(0.01)] * 20  # torch's CosineAnnealingLR would rise again
    assert ours("polynomial", 12, decay_steps=8, min_learning_rate=0.02)[8:] == [0.02] * 4
    assert ours("one_cycle", 15, total_steps=10)[9:] == pytest.approx([BASE / 25 / 1e4] * 6)


@pytest.mark.parametrize("options", [
    {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 0.01, "cooldown": 1,
     "min_learning_rate": 0.02},
    {"mode": "max", "monitor": "val_accuracy", "factor": 0.3, "patience": 1,
     "threshold": 0.05, "threshold_mode": "abs"},
    {"mode": "auto", "monitor": "val_accuracy", "patience": 0, "eps": 0.05},
])
def test_reduce_on_plateau_matches_torch(options):
    values = [1.0, 0.9, 0.95, 0.92, 0.91, 0.905, 0.904, 0.95, 0.5, 0.6, 0.7, 0.8, 0.81, 0.82]
    torch_mode = {"auto": "max"}.get(options["mode"], options["mode"])
    p = torch.nn.Parameter(torch.zeros(1))
    topt = torch.optim.SGD([p], lr=BASE)
    kw = {k: v for k, v in options.items() if k in ("factor", "patience", "threshold",
                                                     "threshold_mode", "cooldown", "eps")}
    sched = tls.ReduceLROnPlateau(topt, mode=torch_mode, min_lr=options.get("min_learning_rate", 0),
                                  **kw)
    opt = SGD([Variable(torch.zeros(1), name="w")], learning_rate=BASE)
    kind = kinds.schedule_kinds.get("reduce_on_plateau")
    mine = build_schedule("reduce_on_plateau", kind.Config(**options), opt)
    monitor = options.get("monitor", "val_loss")
    got, want = [], []
    for epoch, v in enumerate(values, start=1):
        sched.step(v)
        mine.observe({"kind": "epoch", "epoch": epoch, monitor: v})
        mine.observe({"kind": "step", "step": epoch, monitor: 0.0})  # other interval: ignored
        mine.observe({"kind": "epoch", "epoch": epoch})  # without the monitor: ignored
        want.append(topt.param_groups[0]["lr"])
        got.append(mine.rate(0, epoch))
    assert got == pytest.approx(want, rel=1e-12)
    assert len(set(want)) > 1


def test_reduce_on_plateau_state_round_trips_through_json():
    import json

    opt = SGD([Variable(torch.zeros(1), name="w")], learning_rate=BASE)
    kind = kinds.schedule_kinds.get("reduce_on_plateau")
    a = build_schedule("reduce_on_plateau", kind.Config(patience=0), opt)
    for v in (1.0, 2.0, 3.0):
        a.observe({"kind": "epoch", "val_loss": v})
    b = build_schedule("reduce_on_plateau", kind.Config(patience=0), opt)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict() and b.rate(0, 3) == a.rate(0, 3) == pytest.approx(1e-3)
    fresh = build_schedule("reduce_on_plateau", kind.Config(patience=0), opt)
    assert json.loads(json.dumps(fresh.state_dict()))["best"] == "inf"  # JSON has no inf


def test_scale_multiplies_every_rate_and_is_state():
    opt = SGD([Variable(torch.zeros(1), name="w")], learning_rate=BASE)
    kind = kinds.schedule_kinds.get("step")
    s = build_schedule("step", kind.Config(step_size=1, gamma=0.5), opt)
    s.scale = 0.25
    assert s.apply(0, 2) == pytest.approx(BASE * 0.25 * 0.25) and opt.learning_rate == s.rate(0, 2)
    other = build_schedule("step", kind.Config(step_size=1, gamma=0.5), opt)
    other.load_state_dict(s.state_dict())
    assert other.scale == 0.25


def test_every_schedule_has_its_kind():
    assert schedules.names() == kinds.schedule_kinds.names()
    for name, cls in schedules.items():
        assert issubclass(cls, kinds.schedule_kinds.get(name)), name


@pytest.mark.parametrize("name, options, message", [
    ("multistep", {"milestones": [3, 3]}, "must increase, got \\[3, 3\\]"),
    ("step", {}, "step_size"),
    ("linear_warmup", {"warmup_steps": 0}, "warmup_steps"),
    ("cosine", {"warmup_start_factor": 1.5}, "warmup_start_factor"),
    ("one_cycle", {"pct_start": 1.0}, "pct_start"),
])
def test_bad_options_are_refused(name, options, message):
    with pytest.raises(ValueError, match=message):
        kinds.schedule_kinds.get(name).Config(**options)


def test_run_length_defaults():
    cfg = kinds.Cosine.defaults(kinds.Cosine.Config(warmup_steps=10), 110)
    assert cfg.decay_steps == 100
    assert kinds.Cosine.defaults(kinds.Cosine.Config(decay_steps=7), None).decay_steps == 7
    with pytest.raises(ValueError, match="decay_steps: the length of the run is unknown"):
        kinds.Cosine.defaults(kinds.Cosine.Config(), None)
    notes = []
    assert kinds.Cosine.defaults(kinds.Cosine.Config(warmup_steps=10), 10, notes).decay_steps == 1
    assert len(notes) == 1 and "the run has 10 steps, no more than the 10 of warmup" in notes[0]
    assert math.isclose(ours("one_cycle", 1, total_steps=5)[0], BASE / 25)
