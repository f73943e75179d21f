"""SIGKILL at random moments — some in the middle of a checkpoint write — of forked
processes running ``trainctl train SPEC --run-dir RUN --resume auto``: every resume
succeeds, no visible checkpoint is ever incomplete, and the run ends bit-identical to an
uninterrupted one."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

from resume_helpers import fork_cli, same_run, wait
from trainctl.io import CheckpointStore, RunDir
from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare

KILL_SPEC = """\
name: tiny-kill
seed: 11
device: cpu
data:
  source: {type: blobs, n_samples: 160, sigma: 0.9}
  split: {validation: 0.1, test: 0.1}
  batch_size: 16
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 6, activation: tanh}
    - {type: dropout, rate: 0.25}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.05}
train: {epochs: 4}
checkpoint: {every_n_steps: 4, keep_last: 2}
"""
SLOW_WRITE = 0.04  # seconds per checkpoint file in the killed processes


def start_cli(args: list[str]) -> int:
    return fork_cli(args, slow_write=SLOW_WRITE)


def until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the process made no progress"
        time.sleep(0.002)


def temporaries(ckpts: Path) -> set[str]:
    """Temporary checkpoint directories (each name is unique: mkdtemp)."""
    return {p.name for p in ckpts.iterdir() if ".tmp-" in p.name} if ckpts.is_dir() else set()


def test_sigkill_at_random_moments_then_resume_gives_the_same_weights(tmp_path):
    spec_file = tmp_path / "kill.yaml"
    spec_file.write_text(KILL_SPEC)
    ref = tmp_path / "ref"
    setup = prepare(load_spec(spec_file))
    Trainer(setup, RunDir(ref).create(setup.resolved_yaml())).fit()

    run, rng = tmp_path / "run", random.Random(0)
    ckpts = run / "checkpoints"
    args = ["train", str(spec_file), "--run-dir", str(run), "--resume", "auto"]
    kills = during_write = 0
    stages = set()  # the newest checkpoint after each kill: the kills hit different stages
    while kills < 10 or during_write < 3:
        stale = temporaries(ckpts)  # left by the previous kill; the resume removes them
        latest = CheckpointStore(ckpts).pointer("latest")
        pid = start_cli(args)
        if kills % 3 == 0:  # once this process has completed a checkpoint, anywhere after it
            until(lambda: CheckpointStore(ckpts).pointer("latest") != latest)
            time.sleep(rng.uniform(0, 0.15))
        elif kills % 3 == 1:  # any moment: start-up, a step, a write
            time.sleep(rng.uniform(0, 0.5))
        else:  # inside a checkpoint write
            until(lambda: bool(temporaries(ckpts) - stale))
            time.sleep(rng.uniform(0, SLOW_WRITE * 3))
        done, status = os.waitpid(pid, os.WNOHANG)
        assert not done, f"the run ended before kill {kills + 1}: exit {status >> 8}"
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        during_write += bool(temporaries(ckpts) - stale)  # a new temporary: killed mid-write
        entry, skipped = CheckpointStore(ckpts).newest_valid()
        assert skipped == []  # never a visible, incomplete checkpoint
        assert entry is None or entry.ok
        stages.add(entry.name if entry else None)
    assert wait(fork_cli(args), timeout=120) == 0  # the last one runs to the end, at full speed
    assert same_run(run, ref)
    assert list(CheckpointStore(ckpts).iter_temporaries()) == []
    assert kills >= 10 and during_write >= 3 and len(stages) >= 4, (kills, during_write, stages)
