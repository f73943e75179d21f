"""Signals in-process: each finishes the step, writes a checkpoint (or not, as the spec's
per-signal action says) and stops; a second SIGINT leaves at once without a partial
checkpoint (SIGKILL: test_resume_kill.py)."""

from __future__ import annotations

import os
import signal

import pytest

from resume_helpers import make_spec, new_run, records, resume_run, same_run
from trainctl.io import CheckpointStore
from trainctl.io import checkpoint as ck
from trainctl.train import Callback, Trainer
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
    text = make_spec().to_yaml().splitlines()  # the line of `sigint:` in the written spec
    line = next(i for i, t in enumerate(text, 1) if t.strip().startswith("sigint:"))
    assert str(exc.value) == (f"tiny.yaml:{line}:13: checkpoint.signals.sigint: expected one of "
                              "'snapshot', 'stop', 'snapshot_and_stop', 'none', got "
                              "'snapshot_and_go'")
