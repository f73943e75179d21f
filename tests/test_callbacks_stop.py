"""Callbacks that end a run: early_stopping (against Keras' rule applied to an uninterrupted
run's records), restore_best_weights (against that run's checkpoints), the best-model
checkpoint by a monitored value, and the time budget (a run cut by it and resumed equals the
uninterrupted run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from control_helpers import (Recorder, StopAt, final_weights, make_spec, new_trainer, records,
                             same_weights)
from trainctl.cli.app import app
from trainctl.io import CheckpointStore, RunDir, load_checkpoint, step_name
from trainctl.train import Trainer, prepare
from trainctl.train.callbacks_stop import TimeBudget
from trainctl.train.resume import apply_resume, plan_resume

EPOCHS = 10
KEEP_ALL = "{keep_last: null}"


def keras_stop(values, patience, min_delta, mode):
    """Keras 3's EarlyStopping.on_epoch_end over ``values``: (index it stops at or None,
    index of the best value)."""
    best, best_i, wait = float("inf") if mode == "min" else -float("inf"), None, 0
    for i, v in enumerate(values):
        wait += 1
        if (v < best - min_delta) if mode == "min" else (v > best + min_delta):
            best, best_i, wait = v, i, 0
            continue
        if wait >= patience and i > 0:
            return i, best_i
    return None, best_i


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run, every epoch's checkpoint kept."""
    run = tmp_path_factory.mktemp("ref") / "run"
    new_trainer(make_spec(train=f"{{epochs: {EPOCHS}}}", checkpoint=KEEP_ALL), run).fit()
    return run


def early(monitor, patience, min_delta=0.0, restore=False, mode="auto"):
    return (f"[{{type: early_stopping, monitor: {monitor}, patience: {patience}, "
            f"min_delta: {min_delta}, mode: {mode}, restore_best_weights: {str(restore).lower()}}}]")


CASES = [("val_loss", 3, 0.0, "min"), ("val_accuracy", 4, 0.0, "max"),
         ("val_loss", 2, 0.03, "min"), ("loss", 0, 0.0, "min")]


@pytest.mark.parametrize("monitor, patience, min_delta, mode", CASES)
def test_early_stopping_stops_where_keras_would(tmp_path, reference, monitor, patience,
                                                min_delta, mode):
    ref = records(reference)
    stop, best = keras_stop([r[monitor] for r in ref], patience, min_delta, mode)
    assert stop is not None and stop < EPOCHS - 1  # it does stop early here
    run = tmp_path / "run"
    trainer = new_trainer(make_spec(train=f"{{epochs: {EPOCHS}}}",
                                    callbacks=early(monitor, patience, min_delta)), run)
    history = trainer.fit()
    assert records(run) == ref[:stop + 1] and len(history) == stop + 1
    assert trainer.finished and (run / "checkpoints" / "final").is_dir()
    assert trainer.stop_reason.startswith(f"early_stopping: {monitor} did not improve")
    state = trainer.stateful_callbacks()["early_stopping"].state_dict()
    assert state["best"] == ref[best][monitor] and state["best_step"] == ref[best]["step"]
    assert state["stopped"] and state["mode"] == mode
    # without restore_best_weights the final weights are the last ones
    assert same_weights(final_weights(run), final_weights(reference, step_name(ref[stop]["step"])))


def test_restore_best_weights_ends_with_the_best_checks_weights(tmp_path, reference):
    ref = records(reference)
    stop, best = keras_stop([r["val_accuracy"] for r in ref], 4, 0.0, "max")
    run = tmp_path / "run"
    rec = Recorder()
    trainer = new_trainer(make_spec(train=f"{{epochs: {EPOCHS}}}",
                                    callbacks=early("val_accuracy", 4, restore=True)), run, rec)
    trainer.fit()
    want = final_weights(reference, step_name(ref[best]["step"]))
    assert same_weights(final_weights(run), want)
    assert not same_weights(want, final_weights(reference, step_name(ref[stop]["step"])))
    assert rec.notices[-1] == (f"early_stopping: restored the weights of step {ref[best]['step']} "
                               f"(val_accuracy {ref[best]['val_accuracy']:.6g})")


def resume(run: Path, spec, *extra):
    setup = prepare(spec)
    plan = plan_resume(run, setup)
    trainer = Trainer(setup, RunDir.open(run), list(extra))
    for cb in extra:
        cb.trainer = trainer
    assert apply_resume(trainer, plan) == []
    return trainer, plan


@pytest.mark.parametrize("stop_at", [32, 45])  # mid-epoch after the best check; an epoch end
def test_early_stopping_state_and_best_weights_survive_a_resume(tmp_path, reference, stop_at):
    _, best = keras_stop([r["val_accuracy"] for r in records(reference)], 4, 0.0, "max")
    best_step = records(reference)[best]["step"]
    assert best_step < stop_at
    spec = make_spec(train=f"{{epochs: {EPOCHS}}}", checkpoint="{monitor: val_accuracy}",
                     callbacks=early("val_accuracy", 4, restore=True))
    whole = tmp_path / "whole"
    new_trainer(spec, whole).fit()
    run = tmp_path / "run"
    new_trainer(spec, run, StopAt(stop_at)).fit()
    _, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert state["callbacks"]["early_stopping"]["best_step"] == best_step
    assert not state["stopped_early"]
    trainer, _ = resume(run, spec, rec := Recorder())
    trainer.fit()
    assert records(run) == records(whole)
    assert same_weights(final_weights(run), final_weights(whole))
    assert f"restored the weights of step {best_step}" in rec.notices[-1]  # read from disk


def test_best_weights_not_on_disk_after_a_resume_are_reported(tmp_path):
    spec = make_spec(train=f"{{epochs: {EPOCHS}}}", checkpoint="{keep_last: 1}",
                     callbacks=early("val_accuracy", 4, restore=True))
    run = tmp_path / "run"
    new_trainer(spec, run, StopAt(40)).fit()
    trainer, _ = resume(run, spec, rec := Recorder())
    trainer.fit()
    assert "the best weights (step 27) were not kept on disk; keeping the last weights" in \
        rec.notices[-1]


def test_an_early_stopped_run_is_complete_on_resume(tmp_path):
    spec = make_spec(train=f"{{epochs: {EPOCHS}}}", callbacks=early("val_loss", 3))
    run = tmp_path / "run"
    new_trainer(spec, run).fit()
    assert plan_resume(run, prepare(spec)).complete


def test_best_checkpoint_by_a_monitored_value_at_evaluation_steps(tmp_path):
    spec = make_spec(train="{epochs: 3, eval_every_n_steps: 4}",
                     checkpoint="{monitor: val_loss, every_epoch: false, keep_last: 1}")
    run = tmp_path / "run"
    rec = Recorder()
    new_trainer(spec, run, rec).fit()
    checks = [r for r in records(run) if "val_loss" in r]
    assert [r["step"] for r in checks] == [4, 8, 9, 12, 16, 18, 20, 24, 27]
    best = min(checks, key=lambda r: r["val_loss"])  # the first of equal values
    store = CheckpointStore(run / "checkpoints")
    assert store.pointer("best") == step_name(best["step"])
    weights, _, state = load_checkpoint(run / "checkpoints" / step_name(best["step"]))
    assert same_weights(weights, rec.weights[best["step"]])
    assert state["callbacks"]["checkpoint_best"]["value"] == best["val_loss"]


def test_best_checkpoint_mode_max(tmp_path, reference):
    ref = records(reference)
    run = tmp_path / "run"
    new_trainer(make_spec(train=f"{{epochs: {EPOCHS}}}",
                          checkpoint="{monitor: val_accuracy, keep_last: 1}"), run).fit()
    first_best = max(ref, key=lambda r: r["val_accuracy"])
    assert CheckpointStore(run / "checkpoints").pointer("best") == step_name(first_best["step"])


class Clock:
    """One second per reading."""

    def __init__(self):
        self.now = -1.0

    def __call__(self):
        self.now += 1.0
        return self.now


def budgeted(trainer):
    for cb in trainer.callbacks.callbacks:
        if isinstance(cb, TimeBudget):
            cb.clock = Clock()
    return trainer


def test_a_run_cut_by_the_time_budget_and_resumed_equals_the_uninterrupted_run(tmp_path,
                                                                                reference):
    spec = make_spec(train=f"{{epochs: {EPOCHS}}}", checkpoint=KEEP_ALL,
                     callbacks="[{type: time_budget, minutes: 0.5}]")  # 30 readings: 30 steps
    run = tmp_path / "run"
    trainer = budgeted(new_trainer(spec, run))
    trainer.fit()
    stops = [trainer.step]
    while not trainer.finished:
        _, _, state = load_checkpoint(run / "checkpoints" / "latest")
        assert (state["kind"], state["step"]) == ("stop", stops[-1])
        assert state["stop_reason"] == (f"time_budget: 30 s of training used up after step "
                                        f"{stops[-1]}")
        trainer, plan = resume(run, spec)
        budgeted(trainer).fit()
        stops.append(trainer.step)
    assert stops == [30, 60, 90]
    assert records(run) == records(reference)
    assert same_weights(final_weights(run), final_weights(reference))


def test_cli_time_budget_stops_with_exit_code_3(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(make_spec(callbacks="[{type: time_budget, seconds: 1.0e-6}]").to_yaml())
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(run)])
    assert result.exit_code == 3, result.output
    assert ("stopped (time_budget: 1e-06 s of training used up after step 1) after step 1; "
            f"checkpoint {run / 'checkpoints' / 'step-000000001'}") in result.stderr
    assert f"resume with: trainctl train {spec} --resume {run}" in result.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
