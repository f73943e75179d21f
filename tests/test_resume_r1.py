"""Case R1 (cases/resume.md): schedule, Adam moments and step survive a checkpoint and a
resume in a fresh process, bit for bit. The case's values are copied here as literals.

The learning rate is driven by a step schedule written in this test (trainctl has no
schedules yet); its state travels in the checkpoint's ``schedule`` slot of state.json.
The typical faults (schedule state lost, Adam moments lost) are shown to give the case's
other values, so the resumed comparison can fail.
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

class StepSchedule:
    """torch.optim.lr_scheduler.StepLR in its chainable form: every ``step_size`` epochs
    the current rate is multiplied by ``gamma``; its state is the epoch counter."""

    def __init__(self, optimizer, step_size=2, gamma=0.5):
        self.optimizer, self.step_size, self.gamma, self.epoch = optimizer, step_size, gamma, 0

    def step(self):
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.optimizer.learning_rate = self.optimizer.learning_rate * self.gamma

    def state_dict(self):
        return {"type": "step", "epoch": self.epoch}

    def load_state_dict(self, state):
        self.epoch = state["epoch"]

def run_epochs(p, opt, schedule, epochs):
    """One step per epoch on sum((p - [3, 1])^2); returns the rates used."""
    rates = []
    for _ in range(epochs):
        rates.append(opt.learning_rate)
        p.grad = tensor(2 * (p.data - torch.tensor([3.0, 1.0], dtype=torch.float64)))
        opt.step()
        opt.zero_grad()
        schedule.step()
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
rates = run_epochs(p, opt, schedule, 6 - state["epoch"])
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


def test_schedule_state_lost_gives_the_cases_wrong_rates(stopped_after_epoch_3):
    weights, slots, state = load_checkpoint(stopped_after_epoch_3)
    p = Variable(weights["p"], name="p")
    opt = Adam([p], learning_rate=0.1)
    opt.load_state_dict(slots, state["optimizer"])
    rates = run_epochs(p, opt, StepSchedule(opt), 3)  # counter starts again at 0
    assert rates == SCHEDULE_LOST[0]
    assert p.data.tolist() == pytest.approx(SCHEDULE_LOST[1], rel=0, abs=1e-12)


def test_adam_moments_lost_gives_the_cases_wrong_weights(stopped_after_epoch_3):
    weights, _, state = load_checkpoint(stopped_after_epoch_3)
    p = Variable(weights["p"], name="p")
    opt = Adam([p], learning_rate=state["optimizer"]["learning_rate"])  # no slots, step 1
    schedule = StepSchedule(opt)
    schedule.load_state_dict(state["schedule"])
    assert run_epochs(p, opt, schedule, 3) == RESUMED_RATES
    assert p.data.tolist() == pytest.approx(MOMENTS_LOST, rel=0, abs=1e-12)
    assert p.data.tolist() != pytest.approx(FINAL, rel=0, abs=1e-9)


def test_checkpoint_keeps_step_schedule_and_moments(stopped_after_epoch_3):
    weights, slots, state = load_checkpoint(stopped_after_epoch_3)
    assert (state["step"], state["epoch"], state["schedule"]) == (3, 3, {"type": "step", "epoch": 3})
    assert state["optimizer"]["iterations"] == 3 and state["optimizer"]["learning_rate"] == 0.05
    assert sorted(slots) == ["p/m", "p/v"] and weights["p"].dtype == torch.float64
