"""The non-finite guard: no non-finite update reaches the weights, each policy acts as its
options say, and the report names the first op that produced a non-finite value (checked
against the same forward computed in plain torch)."""

from __future__ import annotations

import math

import pytest
import torch

from control_helpers import Recorder, make_spec, new_trainer, same_weights, spec_text, weights_of
from trainctl.autodiff import ops, tensor
from trainctl.io import load_checkpoint
from trainctl.train.callbacks_guard import NonFiniteError
from trainctl.train.nonfinite import locate_nonfinite

EXPLODING = "{type: sgd, learning_rate: 1.0e+6}"


def guard(policy: str, **options) -> str:
    extra = "".join(f", {k}: {v}" for k, v in options.items())
    return f"[{{type: nonfinite_guard, policy: {policy}{extra}}}]"


def poison(trainer, at_step: int, where: str, layer: int = 0):
    """Make layer ``layer`` produce NaN at step ``at_step``: in its output (``forward``) or
    only in the gradient through it (``backward``: sqrt at 0, multiplied by 0)."""
    target = trainer.setup.model.layers[layer]
    original = target.call

    def call(x, training=False):
        out = original(x, training=training)
        if training and trainer.step + 1 == at_step:  # the step in progress
            if where == "forward":
                return out * tensor(float("nan"))
            # not sqrt(relu(...)): relu's rule (threshold_backward, as torch's) gives 0
            # where relu was 0, even for a NaN gradient
            return out + ops.sqrt(out * 0.0) * 0.0
        return out

    target.call = call


def test_stop_names_the_first_op_that_overflows_and_keeps_the_weights(tmp_path):
    run = tmp_path / "run"
    rec = Recorder()
    text = spec_text(optimizer=EXPLODING).replace("    - {type: dropout, rate: 0.3}\n", "")
    trainer = new_trainer(make_spec(text), run, rec)
    with pytest.raises(NonFiniteError) as exc:
        trainer.fit()
    step = trainer.step + 1  # the failing step (not counted)
    message = str(exc.value)
    assert f"non-finite loss at step {step} (epoch 1, batch {step})" in message
    weights, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert (state["kind"], state["step"], state["data"]["batch"]) == ("stop", step - 1, step - 1)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert same_weights(weights, weights_of(trainer))
    assert same_weights(weights, rec.weights[step - 1])
    # the oracle: the same batch through the saved weights in plain torch, op by op
    x = torch.from_numpy(next(iter(trainer.setup.splits.train.iterate(0, position=step - 1)))[0])
    h, first = x, None
    plan = (("dense", ("matmul_nd", "add", "relu")), ("dense_1", ("matmul_nd", "add")))
    for layer, names in plan:
        for op in names:
            h = {"matmul_nd": lambda h: h @ weights[f"{layer}/kernel"],
                 "add": lambda h: h + weights[f"{layer}/bias"], "relu": torch.relu}[op](h)
            if first is None and not torch.isfinite(h).all():
                first = f"forward: op {op!r} of layer {layer!r} (dense) gave " + (
                    "nan" if torch.isnan(h).any() else "inf")
    assert first is not None and first in message, (first, message)
    assert "stopped (nonfinite_guard policy stop)" in message and "step-" in message


def test_the_guard_is_on_by_default_and_off_lets_nan_through():
    with pytest.raises(NonFiniteError):
        new_trainer(make_spec(optimizer=EXPLODING)).fit()
    trainer = new_trainer(make_spec(optimizer=EXPLODING, callbacks=guard("off")))
    history = trainer.fit()
    kernel = weights_of(trainer)["dense/kernel"].reshape(-1).tolist()
    assert any(not math.isfinite(v) for v in kernel)
    assert not math.isfinite(history[-1]["loss"])


@pytest.mark.parametrize("where, expected", [
    ("forward", "forward: op 'mul' of layer 'dense' (dense) gave nan"),
    ("backward", "backward: the gradient op 'sqrt' of layer 'dense' (dense) gives its input 0 "
                 "is nan"),
])
def test_skip_batch_skips_only_the_poisoned_update(where, expected):
    rec = Recorder()
    trainer = new_trainer(make_spec(callbacks=guard("skip_batch")), None, rec)
    poison(trainer, 12, where)
    history = trainer.fit()
    assert len(rec.notices) == 1 and expected in rec.notices[0], rec.notices
    assert "step 12 (epoch 2, batch 3)" in rec.notices[0] and "batch skipped" in rec.notices[0]
    assert same_weights(rec.weights[12], rec.weights[11])  # no update at step 12
    assert not same_weights(rec.weights[13], rec.weights[12])  # training goes on
    assert trainer.setup.optimizer.iterations == trainer.step - 1 == 26
    assert all(math.isfinite(r["loss"]) for r in history)
    assert trainer.stateful_callbacks()["nonfinite_guard"].state_dict()["skipped"] == 1


def test_skip_batch_stops_after_max_skips_in_a_row():
    trainer = new_trainer(make_spec(optimizer=EXPLODING, callbacks=guard("skip_batch",
                                                                          max_skips=2)))
    with pytest.raises(NonFiniteError, match=r"policy skip_batch, 3 in a row"):
        trainer.fit()


def test_rollback_restores_the_snapshot_and_lowers_the_rate():
    rec = Recorder()
    spec = make_spec(optimizer="{type: sgd, learning_rate: 0.5}",
                     callbacks=guard("rollback", factor=0.1, snapshot_every_n_steps=4))
    trainer = new_trainer(spec, None, rec)
    poison(trainer, 7, "forward", layer=2)
    trainer.fit()
    assert len(rec.notices) == 1 and "rolled back to the weights of step 4" in rec.notices[0]
    assert "forward: op 'mul' of layer 'dense_1' (dense)" in rec.notices[0]
    assert same_weights(rec.weights[7], rec.weights[4])  # the snapshot, taken before step 5
    assert rec.rates[6] == 0.5 and rec.rates[8] == pytest.approx(0.05)
    assert trainer.setup.optimizer.learning_rate == pytest.approx(0.05)


def test_rollback_with_a_schedule_scales_the_schedule():
    rec = Recorder()
    spec = make_spec(optimizer="{type: sgd, learning_rate: 0.5}",
                     schedule="{type: exponential, gamma: 0.5}",
                     callbacks=guard("rollback", factor=0.25))
    trainer = new_trainer(spec, None, rec)
    poison(trainer, 12, "forward")
    trainer.fit()
    assert rec.rates[11] == 0.25 and rec.rates[13] == pytest.approx(0.25 * 0.25)
    assert rec.rates[20] == pytest.approx(0.5 * 0.5 ** 2 * 0.25)  # epoch 3
    assert trainer.schedule.state_dict()["scale"] == 0.25


def test_rollback_gives_up_after_max_rollbacks():
    spec = make_spec(optimizer=EXPLODING, callbacks=guard("rollback", factor=0.9,
                                                          max_rollbacks=2))
    with pytest.raises(NonFiniteError, match=r"policy rollback, 3 in a row"):
        new_trainer(spec).fit()


def test_rollback_recovers_from_an_exploding_rate():
    rec = Recorder()
    spec = make_spec(optimizer=EXPLODING, callbacks=guard("rollback", factor=1e-4))
    trainer = new_trainer(spec, None, rec)
    history = trainer.fit()
    assert 1 <= len(rec.notices) <= 3
    assert trainer.setup.optimizer.learning_rate == pytest.approx(1e6 * 1e-4 ** len(rec.notices))
    assert all(torch.isfinite(w).all() for w in weights_of(trainer).values())
    assert math.isfinite(history[-1]["loss"])


def test_locate_nonfinite_in_the_data_and_a_passing_batch():
    setup = make_trainer_setup()
    x, y = batch(setup)
    bad = x.data.clone()
    bad[0, 1] = float("inf")
    assert str(locate_nonfinite(setup, tensor(bad), y)) == "the batch's features hold inf"
    bad_y = y.data.clone().float()
    bad_y[3] = float("nan")
    assert locate_nonfinite(setup, x, tensor(bad_y)).where == "labels"
    assert locate_nonfinite(setup, x, y).where == "none"


def make_trainer_setup():
    return new_trainer(make_spec()).setup


def batch(setup):
    from trainctl.train.loop import to_tensors

    return to_tensors(next(iter(setup.splits.train)), setup.device)


def test_the_spec_refuses_two_guards_and_bad_options():
    from trainctl.errors import SpecErrors

    with pytest.raises(SpecErrors) as exc:
        new_trainer(make_spec(spec_text(callbacks="[nonfinite_guard, {type: nonfinite_guard, "
                                                  "policy: skip, factor: 2}]")))
    text = str(exc.value)
    assert "callbacks[1].policy" in text and "callbacks[1].factor" in text
    with pytest.raises(SpecErrors, match=r"callbacks\[1\].type: nonfinite_guard is already "
                                         r"given at callbacks\[0\]"):
        new_trainer(make_spec(spec_text(callbacks="[nonfinite_guard, nonfinite_guard]")))


def test_a_refused_batch_leaves_batch_normalization_statistics_alone():
    rec = Recorder()
    text = spec_text(callbacks=guard("skip_batch")).replace(
        "    - {type: dropout, rate: 0.3}\n", "    - {type: batch_normalization}\n")
    trainer = new_trainer(make_spec(text), None, rec)
    poison(trainer, 5, "forward")  # NaN into the batch normalization's input at step 5
    trainer.fit()
    assert "batch skipped" in rec.notices[0]
    before, after = rec.weights[4], rec.weights[5]
    assert torch.isfinite(after["batch_normalization/moving_mean"]).all()
    assert same_weights(before, after)  # moving statistics included
    assert not torch.equal(rec.weights[6]["batch_normalization/moving_mean"],
                           after["batch_normalization/moving_mean"])


def test_cli_stops_with_exit_code_1_and_keeps_the_run(tmp_path):
    import json

    from typer.testing import CliRunner

    from trainctl.cli.app import app

    spec = tmp_path / "boom.yaml"
    spec.write_text(make_spec(optimizer=EXPLODING).to_yaml())
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(run)])
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: non-finite loss at step ") and "forward: op " in line
    assert "Traceback" not in result.output
    _, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert state["kind"] == "stop"
    assert f"step-{state['step']:09d} holds the state before this batch" in line
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_stop_checks_at_the_next_record_and_goes_back_to_the_state_before_the_bad_batch(
        tmp_path):
    """``stop`` reads its flags at step records only (no synchronisation per step): the bad
    step 12 is found at the record of step 15, and the weights (batch normalization's
    statistics included), the counters and the epoch's sums are put back to those after
    step 11 by replaying steps 10 and 11."""
    run = tmp_path / "run"
    rec = Recorder()
    text = spec_text(train="{epochs: 3, log_every_n_steps: 5}").replace(
        "    - {type: dropout, rate: 0.3}\n",
        "    - {type: batch_normalization}\n    - {type: dropout, rate: 0.3}\n")
    trainer = new_trainer(make_spec(text), run, rec)
    poison(trainer, 12, "backward")
    with pytest.raises(NonFiniteError) as exc:
        trainer.fit()
    message = str(exc.value)
    assert "non-finite gradient at step 12 (epoch 2, batch 3): backward: the gradient op " \
           "'sqrt' of layer 'dense' (dense) gives its input 0 is nan" in message, message
    assert max(rec.weights) == 15  # steps 13-15 ran before the check
    assert (trainer.step, trainer.epoch, trainer.batch) == (11, 1, 2)
    weights, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert (state["kind"], state["step"], state["data"]["batch"]) == ("stop", 11, 2)
    assert same_weights(weights, rec.weights[11]) and same_weights(weights, weights_of(trainer))
    assert torch.isfinite(weights["batch_normalization/moving_mean"]).all()
    progress = state["epoch_progress"]
    assert progress["count"] == 32
    assert progress["loss_sum"]["values"][0] == pytest.approx(16 * (rec.losses[10] +
                                                                     rec.losses[11]), rel=1e-6)
