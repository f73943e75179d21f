"""Training by steps, evaluation every N epochs or steps, step records every N steps
(9 steps per epoch in the tiny spec)."""

from __future__ import annotations

import pytest

from control_helpers import (STEPS_PER_EPOCH, Recorder, StopAt, final_weights, make_spec,
                             new_trainer, records, same_weights, spec_text)
from trainctl.errors import SpecErrors
from trainctl.io import RunDir, load_checkpoint
from trainctl.train import Callback, Trainer, evaluate, prepare
from trainctl.train.resume import apply_resume, plan_resume


def test_train_by_steps_ends_mid_epoch_with_a_validated_step_record(tmp_path):
    run = tmp_path / "run"
    trainer = new_trainer(make_spec(train="{steps: 22}"), run)
    history = trainer.fit()
    recs = records(run)
    assert [(r["kind"], r["step"]) for r in recs] == [("epoch", 9), ("epoch", 18), ("step", 22)]
    assert recs[-1]["epoch"] == 3 and "val_loss" in recs[-1] and "val_accuracy" in recs[-1]
    assert len(history) == 2 and trainer.finished
    assert (trainer.max_epochs, trainer.max_steps) == (3, 22)
    _, _, state = load_checkpoint(run / "checkpoints" / "final")
    assert (state["step"], state["epoch"], state["data"]["batch"]) == (22, 2, 4)
    assert plan_resume(run, prepare(make_spec(train="{steps: 22}"))).complete


def test_raising_steps_continues_exactly(tmp_path):
    straight = tmp_path / "straight"
    new_trainer(make_spec(train="{steps: 30}"), straight).fit()
    run = tmp_path / "run"
    new_trainer(make_spec(train="{steps: 22}"), run).fit()
    spec = make_spec(train="{steps: 30}")
    setup = prepare(spec)
    plan = plan_resume(run, setup)
    assert [str(c) for c in plan.changes] == ["train.steps: 22 -> 30"] and not plan.complete
    trainer = Trainer(setup, RunDir.open(run))
    apply_resume(trainer, plan)
    trainer.fit()
    assert same_weights(final_weights(run), final_weights(straight))
    assert [r for r in records(run) if r["step"] != 22] == records(straight)


def test_eval_every_n_epochs_and_always_the_last():
    history = new_trainer(make_spec(train="{epochs: 5, eval_every_n_epochs: 2}")).fit()
    assert [("val_loss" in r) for r in history] == [False, True, False, True, True]
    assert all("loss" in r and "accuracy" in r for r in history)


def test_log_every_n_steps_writes_running_means(tmp_path):
    run = tmp_path / "run"
    rec = Recorder()
    new_trainer(make_spec(train="{epochs: 2, log_every_n_steps: 3}"), run, rec).fit()
    recs = records(run)
    steps = [r for r in recs if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [3, 6, 9, 12, 15, 18] and rec.step_records == [
        {k: v for k, v in r.items()} for r in steps]
    assert [r["epoch"] for r in steps] == [1, 1, 1, 2, 2, 2]
    assert all("val_loss" not in r for r in steps)
    epochs = {r["epoch"]: r for r in recs if r["kind"] == "epoch"}
    for r in steps:  # the running mean over the epoch so far; at its last step, the epoch's
        if r["step"] % STEPS_PER_EPOCH == 0:
            assert (r["loss"], r["accuracy"]) == (epochs[r["epoch"]]["loss"],
                                                  epochs[r["epoch"]]["accuracy"])
    assert [list(r) for r in steps][0] == ["kind", "epoch", "step", "loss", "accuracy",
                                           "learning_rate"]
    # records are in step order, the epoch record after its last step's
    assert [r["step"] for r in recs] == [3, 6, 9, 9, 12, 15, 18, 18]


class Evaluated(Callback):
    def __init__(self):
        self.seen = []

    def on_evaluation(self, record):
        self.seen.append((record["kind"], record["step"]))


def test_eval_every_n_steps_matches_an_evaluation_at_that_step(tmp_path):
    seen = Evaluated()
    run = tmp_path / "run"
    new_trainer(make_spec(train="{epochs: 2, eval_every_n_steps: 4}"), run, seen).fit()
    recs = records(run)
    assert [(r["kind"], r["step"]) for r in recs] == [("step", 4), ("step", 8), ("epoch", 9),
                                                      ("step", 12), ("step", 16), ("epoch", 18)]
    assert seen.seen == [(r["kind"], r["step"]) for r in recs]
    # the oracle: the same run stopped after step 12, then evaluated
    stopped = new_trainer(make_spec(train="{epochs: 2}"), None, StopAt(12))
    stopped.fit()
    want = evaluate(stopped.setup, stopped.setup.splits.validation)
    assert (recs[3]["val_loss"], recs[3]["val_accuracy"]) == (want["loss"], want["accuracy"])


def test_epochs_and_steps_together_are_refused():
    with pytest.raises(SpecErrors, match=r"tiny.yaml:\d+:\d+: train.epochs: give epochs or "
                                         r"steps, not both \(epochs 3, steps 20\)"):
        make_spec(train="{epochs: 3, steps: 20}")
    with pytest.raises(SpecErrors, match=r"--epochs 2: train.epochs: give epochs or steps"):
        make_spec(train="{steps: 20}").with_overrides(epochs=2)
    assert make_spec(train="{eval_batch_size: 64}").train.epochs == 10  # the default


def test_step_counts_must_be_positive():
    with pytest.raises(SpecErrors) as exc:
        make_spec(spec_text(train="{steps: 0, log_every_n_steps: 0, eval_every_n_epochs: 0}"))
    text = str(exc.value)
    assert all(f"train.{k}: must be > 0" in text
               for k in ("steps", "log_every_n_steps", "eval_every_n_epochs"))


def test_every_spec_callback_has_its_kind():
    from trainctl.spec.kinds.callbacks import callback_kinds
    from trainctl.train.callbacks import spec_callbacks
    from trainctl.train.control import Control  # noqa: F401 - registers the callbacks

    assert spec_callbacks.names() == callback_kinds.names()
    for name, cls in spec_callbacks.items():
        assert issubclass(cls, callback_kinds.get(name)) and issubclass(cls, Callback), name
