"""Shared by the resume tests: a tiny spec with shuffling and dropout, a stateful
learning-rate callback (a schedule stand-in), and helpers to train, stop and resume."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from trainctl.backend import manual_seed
from trainctl.io import RunDir
from trainctl.spec import Spec, SpecDoc
from trainctl.train import Callback, Trainer, prepare
from trainctl.train.resume import apply_resume, plan_resume

SPEC = """\
name: tiny-resume
seed: 5
device: cpu
data:
  source: {type: blobs, n_samples: 200, sigma: 0.9}
  split: {validation: 0.1, test: 0.2}
  batch_size: 16
  shuffle: true
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.02}
train: {epochs: 3}
checkpoint: {every_n_steps: 4, keep_last: 2}
"""
STEPS_PER_EPOCH = 9  # 140 training samples in batches of 16


def make_spec(text: str = SPEC, **overrides) -> Spec:
    return Spec.from_doc(SpecDoc.from_text(text, file="tiny.yaml")).with_overrides(**overrides)


class Decay(Callback):
    """Multiplies the learning rate by 0.8 every 5 steps, counting steps itself: a stateful
    stand-in for a schedule (its counter must survive a resume for the rates to agree)."""

    state_key = "decay"

    def __init__(self, optimizer):
        self.optimizer, self.count = optimizer, 0

    def on_batch_end(self, step, batch_size, loss):
        self.count += 1
        if self.count % 5 == 0:
            self.optimizer.learning_rate = self.optimizer.learning_rate * 0.8

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


class StopAt(Callback):
    """Asks the trainer to stop (with a checkpoint) after step ``step``."""

    def __init__(self, step: int, snapshot: bool = True):
        self.step, self.snapshot, self.trainer = step, snapshot, None

    def on_batch_end(self, step, batch_size, loss):
        if step == self.step:
            self.trainer.request_stop(snapshot=self.snapshot)


class Crash(Exception):
    pass


class CrashAt(Callback):
    """Raises after step ``step`` (or at the end of epoch ``epoch``): a process dying."""

    def __init__(self, step: int | None = None, epoch: int | None = None):
        self.at_step, self.at_epoch = step, epoch

    def on_batch_end(self, step, batch_size, loss):
        if step == self.at_step:
            raise Crash(step)

    def on_epoch_end(self, epoch, record):
        if epoch == self.at_epoch:
            raise Crash(epoch)


def scramble_generators() -> None:
    """What a fresh process would have: generators anywhere but where the run left them."""
    manual_seed(12345)
    torch.manual_seed(999)
    random.seed(7)
    np.random.seed(7)


def new_run(path: Path, spec: Spec, *extra: Callback) -> Trainer:
    setup = prepare(spec)
    trainer = Trainer(setup, RunDir(path).create(setup.resolved_yaml()),
                      [Decay(setup.optimizer), *extra])
    for cb in extra:
        if isinstance(cb, StopAt):
            cb.trainer = trainer
    return trainer


def resume_run(path: Path, spec: Spec, *, apply_optimizer_changes: bool = False):
    """Resume ``path`` as a fresh process would: (trainer, plan, warnings), not yet fitted."""
    scramble_generators()
    setup = prepare(spec)
    plan = plan_resume(path, setup, apply_optimizer_changes=apply_optimizer_changes)
    trainer = Trainer(setup, RunDir.open(path), [Decay(setup.optimizer)])
    warnings = apply_resume(trainer, plan)
    return trainer, plan, warnings


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "input_wait")}
            for line in lines]


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))


def same_run(a: Path, b: Path) -> bool:
    """metrics.jsonl (but seconds) and final weights bit for bit."""
    wa, wb = final_weights(a), final_weights(b)
    return records(a) == records(b) and wa.keys() == wb.keys() and \
        all(torch.equal(wa[k], wb[k]) for k in wa)


def fork_cli(args: list[str], slow_write: float = 0.0, output: Path | None = None) -> int:
    """Fork a process running ``trainctl ARGS``; returns its pid. The imports are inherited
    (no start-up cost); stdout and stderr go to ``output`` (else nowhere); checkpoint files
    take ``slow_write`` seconds each to write. Its exit code is the command's."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        sink = os.open(output or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(sink, 1)
        os.dup2(sink, 2)
        sys.stdout = sys.stderr = open(1, "w", closefd=False, buffering=1)
        torch.set_num_threads(1)
        from trainctl.io.checkpoint import SLOW_WRITE_ENV

        os.environ[SLOW_WRITE_ENV] = str(slow_write)
        from trainctl.cli.app import app

        result = app(args, prog_name="trainctl", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - any failure is reported by the exit code
        code = 71
    finally:
        os._exit(code)


def wait(pid: int, timeout: float) -> int:
    """The exit code of ``pid``; kills it and fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"process {pid} did not finish in {timeout} s")
