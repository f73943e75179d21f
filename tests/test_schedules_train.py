"""Schedules in the trainer: the rate of every step of a run against torch's scheduler
stepped once per update (or per epoch), with gradient accumulation counting updates; the
spec's schedule section and its errors."""

from __future__ import annotations

import pytest
import torch
from torch.optim import lr_scheduler as tls

from control_helpers import Recorder, make_spec, new_trainer, spec_text
from trainctl.errors import SpecErrors
from trainctl.spec import SpecDoc
from trainctl.spec.kinds.check import check_references


def torch_rates(make, n, base, metrics=None):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = make(opt)
    rates = []
    for i in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step(*([metrics[i]] if metrics is not None else []))
    return rates


def test_cosine_with_warmup_rate_of_every_step(tmp_path):
    rec = Recorder()
    trainer = new_trainer(make_spec(schedule="{type: cosine, warmup_steps: 4, "
                                             "warmup_start_factor: 0.1, min_learning_rate: 1e-4}"),
                          None, rec)
    trainer.fit()
    assert trainer.schedule.config.decay_steps == 27 - 4  # the rest of the run
    want = torch_rates(lambda o: tls.SequentialLR(o, [
        tls.LinearLR(o, start_factor=0.1, total_iters=4),
        tls.CosineAnnealingLR(o, T_max=23, eta_min=1e-4)], milestones=[4]), 27, 0.02)
    assert [rec.rates[s] for s in range(1, 28)] == pytest.approx(want, rel=1e-12)
    assert trainer.setup.resolved["schedule"] == {
        "type": "cosine", "interval": "step", "warmup_steps": 4, "warmup_start_factor": 0.1,
        "decay_steps": 23, "min_learning_rate": 1e-4}


def test_a_run_shorter_than_its_warmup_warms_up_throughout_with_a_warning():
    """A trial run (--epochs 1) of a spec with a long warmup: the rate of every step is
    torch's LinearLR over the whole warmup (cut short), and the user is told."""
    rec = Recorder()
    trainer = new_trainer(make_spec(schedule="{type: cosine, warmup_steps: 30, "
                                             "warmup_start_factor: 0.1}"), None, rec)
    assert trainer.setup.notices == [
        "schedule: the run has 27 steps, no more than the 30 of warmup: it ends during the "
        "warmup, before the cosine part (decay_steps set to 1); for a full schedule shorten "
        "the warmup (e.g. --set schedule.warmup_steps=5) or train longer"]
    trainer.fit()
    want = torch_rates(lambda o: tls.LinearLR(o, start_factor=0.1, total_iters=30), 27, 0.02)
    assert [rec.rates[s] for s in range(1, 28)] == pytest.approx(want, rel=1e-12)
    assert trainer.setup.resolved["schedule"]["decay_steps"] == 1


def test_with_gradient_accumulation_a_schedule_counts_updates():
    rec = Recorder()
    spec = make_spec(optimizer="{type: sgd, learning_rate: 0.1, gradient_accumulation_steps: 2}",
                     schedule="{type: exponential, gamma: 0.5, interval: step}")
    trainer = new_trainer(spec, None, rec)
    trainer.fit()
    # 9 batches per epoch: updates after batches 2, 4, 6, 8 and 9 (the epoch's remainder)
    for step in range(1, 28):
        epoch, j = divmod(step - 1, 9)
        assert rec.rates[step] == pytest.approx(0.1 * 0.5 ** (5 * epoch + j // 2)), step
    assert trainer.setup.optimizer.iterations == 15


def test_step_schedule_by_epoch_halves_every_two_epochs():
    spec = make_spec(optimizer="{type: adam, learning_rate: 0.1}", train="{epochs: 6}",
                     schedule="{type: step, step_size: 2, gamma: 0.5}")
    history = new_trainer(spec).fit()
    assert [r["learning_rate"] for r in history] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]


def test_reduce_on_plateau_follows_the_epoch_records():
    spec = make_spec(train="{epochs: 8}", schedule="{type: reduce_on_plateau, monitor: "
                                                   "val_loss, patience: 1, factor: 0.5}")
    history = new_trainer(spec).fit()
    losses = [r["val_loss"] for r in history]
    want = torch_rates(lambda o: tls.ReduceLROnPlateau(o, patience=1, factor=0.5), 8, 0.02, losses)
    assert [r["learning_rate"] for r in history] == pytest.approx(want, rel=1e-12)
    assert len(set(want)) > 1


def test_reduce_on_plateau_by_evaluation_steps():
    rec = Recorder()
    spec = make_spec(train="{epochs: 3, eval_every_n_steps: 2}",
                     schedule="{type: reduce_on_plateau, interval: step, patience: 0, "
                              "factor: 0.5}")
    new_trainer(spec, None, rec).fit()
    checks = [r for r in rec.step_records if "val_loss" in r]
    want = torch_rates(lambda o: tls.ReduceLROnPlateau(o, patience=0, factor=0.5), len(checks),
                       0.02, [r["val_loss"] for r in checks])
    assert [r["learning_rate"] for r in checks] == pytest.approx(want, rel=1e-12)
    assert len(set(want)) > 1


@pytest.mark.parametrize("schedule, message", [
    ("cosin", "schedule.type: unknown schedule 'cosin'; did you mean 'cosine'?"),
    ("step", "schedule.step_size: missing required field"),
    ("{type: reduce_on_plateau, monitor: val_los}",
     "schedule.monitor: 'val_los' is not a value of the records; did you mean 'val_loss'"),
    ("{type: cosine, decay_steps: 0}", "schedule.decay_steps: must be > 0, got 0"),
])
def test_schedule_errors_are_located(schedule, message):
    with pytest.raises(SpecErrors) as exc:
        new_trainer(make_spec(schedule=schedule))
    assert message in str(exc.value)


def test_validate_checks_schedule_and_callbacks_without_torch():
    doc = SpecDoc.from_text(spec_text(schedule="{type: multistep, milestones: [3, 2]}",
                                      callbacks="[{type: early_stop}, {type: time_budget}]"),
                            file="v.yaml")
    errors = [str(e) for e in check_references(doc).errors]
    assert "v.yaml:19:41: schedule.milestones: must increase, got [3, 2]" in errors
    assert any("callbacks[0].type: unknown callback 'early_stop'; did you mean "
               "'early_stopping'?" in e for e in errors)
    assert any("callbacks[1]" in e and "give hours, minutes or seconds" in e for e in errors)
