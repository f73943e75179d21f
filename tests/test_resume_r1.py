"""Case R1 (cases/resume.md): schedule, Adam moments and step survive a checkpoint and a
resume in a fresh process, bit for bit. The case's values are copied here as literals.

The learning rate is driven by trainctl's ``step`` schedule (``trainctl.optim.schedules``,
halving every 2 epochs), which reads the epoch counter the checkpoint keeps; its state
travels in the ``schedule`` slot of state.json. The typical faults (schedule state lost:
the counter starting again from 0; Adam moments lost) are shown to give the case's other
values, so the resumed comparison can fail. tests/test_resume_schedule.py runs the case
through a spec and the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainctl.autodiff import Variable
from trainctl.io import load_checkpoint, save_checkpoint
from trainctl.optim import Adam

ROOT = Path(__file__).resolve().parent.parent
RATES = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
FINAL = [1.348676988806097, -1.650807689454836]
RESUMED_RATES = [0.05, 0.025, 0.025]
SCHEDULE_LOST = ([0.05, 0.05, 0.025], [1.373403315137338, -1.6259739644959883])
MOMENTS_LOST = [1.3495415377554414, -1.6502806667232646]

# Shared by this process and the fresh one (run with ``python -c``).
PROGRAM = '''
import torch
from trainctl.autodiff import Variable, tensor
from trainctl.optim import Adam
from trainctl.optim.schedules import build_schedule
from trainctl.spec.kinds.schedules import Step

def StepSchedule(optimizer):
    """The spec's ``schedule: {type: step, step_size: 2, gamma: 0.5}`` (by epoch)."""
    return build_schedule("step", Step.Config(step_size=2, gamma=0.5), optimizer)

def run_epochs(p, opt, schedule, epochs, first=0):
    """One step per epoch on sum((p - [3, 1])^2) from epoch ``first`` (the counter a
    checkpoint keeps); returns the rates used."""
    rates = []
    for epoch in range(first, first + epochs):
        rates.append(schedule.apply(opt.iterations, epoch))
        p.grad = tensor(2 * (p.data - torch.tensor([3.0, 1.0], dtype=torch.float64)))
        opt.step()
        opt.zero_grad()
    return rates
'''

RESUME = PROGRAM + '''
import json, sys
from trainctl.io import load_checkpoint
weights, slots, state = load_checkpoint(sys.argv[1])
p = Variable(weights["p"], name="p")
opt = Adam([p], learning_rate=0.1)
opt.load_state_dict(slots, state["optimizer"])
schedule = StepSchedule(opt)
schedule.load_state_dict(state["schedule"])
rates = run_epochs(p, opt, schedule, 6 - state["epoch"], first=state["epoch"])
print(json.dumps({"rates": rates, "p": p.data.tolist(), "dtype": str(p.data.dtype)}))
'''

namespace: dict = {}
exec(PROGRAM, namespace)
StepSchedule, run_epochs = namespace["StepSchedule"], namespace["run_epochs"]


def start():
    p = Variable(torch.tensor([1.0, -2.0], dtype=torch.float64), name="p")
    opt = Adam([p], learning_rate=0.1)
    return p, opt, StepSchedule(opt)


def uninterrupted():
    p, opt, schedule = start()
    return run_epochs(p, opt, schedule, 6), p.data.clone()


@pytest.fixture(scope="module")
def stopped_after_epoch_3(tmp_path_factory) -> Path:
    p, opt, schedule = start()
    assert run_epochs(p, opt, schedule, 3) == RATES[:3]
    path = tmp_path_factory.mktemp("r1") / "ckpt"
    save_checkpoint(path, {"p": p.data}, opt.state_dict(),
                    {"step": 3, "epoch": 3, "schedule": schedule.state_dict()})
    return path


def test_uninterrupted_rates_and_final_p():
    rates, p = uninterrupted()
    assert rates == RATES
    assert p.tolist() == pytest.approx(FINAL, rel=0, abs=1e-12)


def test_resumed_in_a_fresh_process_is_bit_identical(stopped_after_epoch_3):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", RESUME, str(stopped_after_epoch_3)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["rates"] == RESUMED_RATES
    assert result["dtype"] == "torch.float64"
    _, p_full = uninterrupted()
    assert result["p"] == p_full.tolist()  # JSON floats round-trip exactly: bit for bit
    assert result["p"] == pytest.approx(FINAL, rel=0, abs=1e-12)


@pytest.mark.parametrize("from_saved_rate", [True, False])
def test_schedule_state_lost_gives_wrong_rates(stopped_after_epoch_3, from_saved_rate):
    """The counter starting again at 0: from the saved rate (0.05, as a chainable StepLR
    restarted would) it gives the case's values; from the base rate, other wrong ones."""
    weights, slots, state = load_checkpoint(stopped_after_epoch_3)
    p = Variable(weights["p"], name="p")
    opt = Adam([p], learning_rate=0.1)
    opt.load_state_dict(slots, state["optimizer"])
    if from_saved_rate:
        opt.config = opt.config.model_copy(update={"learning_rate": opt.learning_rate})
    rates = run_epochs(p, opt, StepSchedule(opt), 3)  # the counter starts again at 0
    if from_saved_rate:
        assert rates == SCHEDULE_LOST[0]
        assert p.data.tolist() == pytest.approx(SCHEDULE_LOST[1], rel=0, abs=1e-12)
    else:
        assert rates == [0.1, 0.1, 0.05]
        assert abs(p.data[0].item() - FINAL[0]) > 1e-3


def test_adam_moments_lost_gives_the_cases_wrong_weights(stopped_after_epoch_3):
    weights, _, state = load_checkpoint(stopped_after_epoch_3)
    p = Variable(weights["p"], name="p")
    opt = Adam([p], learning_rate=state["optimizer"]["config"]["learning_rate"])  # no slots
    schedule = StepSchedule(opt)
    schedule.load_state_dict(state["schedule"])
    assert run_epochs(p, opt, schedule, 3, first=state["epoch"]) == RESUMED_RATES
    assert p.data.tolist() == pytest.approx(MOMENTS_LOST, rel=0, abs=1e-12)
    assert p.data.tolist() != pytest.approx(FINAL, rel=0, abs=1e-9)


def test_checkpoint_keeps_step_schedule_and_moments(stopped_after_epoch_3):
    weights, slots, state = load_checkpoint(stopped_after_epoch_3)
    assert (state["step"], state["epoch"]) == (3, 3)
    assert state["schedule"] == {"type": "step", "interval": "epoch", "scale": 1.0}
    assert state["optimizer"]["iterations"] == 3 and state["optimizer"]["learning_rate"] == 0.05
    assert sorted(slots) == ["p/m", "p/v"] and weights["p"].dtype == torch.float64
