"""Faults: signals (per-signal actions, second SIGINT) in-process, and SIGKILL at random
moments — some in the middle of a checkpoint write — in forked processes running the CLI
with ``--resume auto``: every resume succeeds and the run ends bit-identical."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from resume_helpers import make_spec, new_run, records, resume_run, same_run
from trainctl.io import CheckpointStore, RunDir
from trainctl.io import checkpoint as ck
from trainctl.spec import load_spec
from trainctl.train import Callback, Trainer, prepare
from trainctl.train.signals import SignalExit, exit_code, handle_signals


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "run"
    new_run(path, make_spec()).fit()
    return path


class Kill(Callback):
    """Sends ``signum`` to this process after step ``step``."""

    def __init__(self, step: int, signum: int):
        self.step, self.signum = step, signum

    def on_batch_end(self, step, batch_size, loss):
        if step == self.step:
            os.kill(os.getpid(), self.signum)


def with_actions(**actions):
    text = make_spec().to_yaml()
    for name, action in actions.items():
        old = {"sigusr1": "sigusr1: snapshot"}.get(name, f"{name}: snapshot_and_stop")
        assert text.count(old) == 1
        text = text.replace(old, f"{name}: {action}")
    return make_spec(text)


def fit_with_signals(trainer: Trainer) -> None:
    with handle_signals(trainer, trainer.setup.spec.checkpoint.signals):
        trainer.fit()


@pytest.mark.parametrize("signum,k", [(signal.SIGINT, 13), (signal.SIGTERM, 7),
                                      (signal.SIGHUP, 18)])
def test_signal_finishes_the_step_writes_a_checkpoint_and_stops(tmp_path, reference, signum, k):
    run = tmp_path / "run"
    previous = signal.getsignal(signum)
    trainer = new_run(run, make_spec(), Kill(k, signum))
    fit_with_signals(trainer)
    assert signal.getsignal(signum) is previous  # handlers restored
    assert (trainer.step, trainer.stop_signal) == (k, signum)
    assert CheckpointStore(run / "checkpoints").pointer("latest") == f"step-{k:09d}"
    assert exit_code(signum) == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}[signum]
    resumed, _, _ = resume_run(run, make_spec())
    resumed.fit()
    assert same_run(run, reference)


def test_sigusr1_snapshot_keeps_training(tmp_path, reference):
    run = tmp_path / "run"
    keep_all = make_spec(make_spec().to_yaml().replace("keep_last: 2", "keep_last: null"))
    trainer = new_run(run, keep_all, Kill(13, signal.SIGUSR1))
    fit_with_signals(trainer)
    assert trainer.stop_signal is None and trainer.epoch == 3
    assert (run / "checkpoints" / "step-000000013").is_dir()  # 13 is no periodic step
    assert not (run / "checkpoints" / "step-000000014").is_dir()
    assert same_run(run, reference)


def test_action_none_ignores_and_stop_writes_nothing(tmp_path, reference):
    run = tmp_path / "a"
    fit_with_signals(new_run(run, with_actions(sigint="none"), Kill(13, signal.SIGINT)))
    assert records(run) == records(reference)
    run = tmp_path / "b"
    trainer = new_run(run, with_actions(sigterm="stop"), Kill(13, signal.SIGTERM))
    fit_with_signals(trainer)
    assert (trainer.step, trainer.stop_signal) == (13, signal.SIGTERM)
    assert CheckpointStore(run / "checkpoints").pointer("latest") == "step-000000012"
    resumed, plan, _ = resume_run(run, with_actions(sigterm="stop"))
    assert plan.entry.name == "step-000000012"
    assert [str(c) for c in plan.changes] == []
    resumed.fit()
    assert same_run(run, reference)


def test_second_sigint_exits_at_once_without_a_partial_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    trainer = new_run(run, make_spec(), Kill(13, signal.SIGINT))
    real = ck.write_file
    writes = []

    def write(path, data):  # the second Ctrl-C lands in the middle of the snapshot
        writes.append(path.name)
        if "step-000000013" in path.parent.name and len(writes) > 1:
            os.kill(os.getpid(), signal.SIGINT)
        real(path, data)

    monkeypatch.setattr(ck, "write_file", write)
    with pytest.raises(SignalExit) as exc:
        fit_with_signals(trainer)
    assert (exc.value.signum, exc.value.exit_code) == (signal.SIGINT, 130)
    assert isinstance(exc.value, KeyboardInterrupt)
    store = CheckpointStore(run / "checkpoints")
    assert [e.name for e in store.entries()] == ["step-000000009", "step-000000012"]
    assert store.pointer("latest") == "step-000000012" and list(store.iter_temporaries()) == []


def test_actions_are_validated_in_the_spec():
    from trainctl.errors import SpecErrors

    with pytest.raises(SpecErrors) as exc:
        with_actions(sigint="snapshot_and_go")
    assert "checkpoint.signals.sigint" in str(exc.value)
    assert str(exc.value) == ("tiny.yaml:46:13: checkpoint.signals.sigint: expected one of "
                              "'snapshot', 'stop', 'snapshot_and_stop', 'none', got "
                              "'snapshot_and_go'")


# ---- SIGKILL at random moments -------------------------------------------------------------
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
checkpoint: {every_n_steps: 2, keep_last: 2}
"""
SLOW_WRITE = 0.08  # seconds per checkpoint file in the killed processes


def start_cli(args: list[str]) -> int:
    """Fork a process running ``trainctl ARGS`` (imports are inherited: no start-up cost)."""
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        torch.set_num_threads(1)
        os.environ[ck.SLOW_WRITE_ENV] = str(SLOW_WRITE)
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"process {pid} did not finish in {timeout} s")


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
    while kills < 10 or during_write < 3:
        stale = temporaries(ckpts)  # left by the previous kill; the resume removes them
        pid = start_cli(args)
        if kills % 3 == 2:  # wait for a checkpoint write to begin, kill inside it
            deadline = time.monotonic() + 10
            while not temporaries(ckpts) - stale and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, SLOW_WRITE * 2))
        else:
            time.sleep(rng.uniform(0.05, 0.6))
        done, status = os.waitpid(pid, os.WNOHANG)
        assert not done, f"the run ended before kill {kills + 1}: exit {status >> 8}"
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
        during_write += bool(temporaries(ckpts) - stale)  # a new temporary: killed mid-write
        entry, skipped = CheckpointStore(ckpts).newest_valid()
        assert skipped == []  # never a visible, incomplete checkpoint
        assert entry is None or entry.ok
    assert wait(start_cli(args), timeout=120) == 0
    assert same_run(run, ref)
    assert list(CheckpointStore(ckpts).iter_temporaries()) == []
    assert kills >= 10 and during_write >= 3
