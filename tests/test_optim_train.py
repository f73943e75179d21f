"""The optimizer options through the Trainer: gradient accumulation equals one batch N times
larger (float64), the moving average of the weights is what evaluation sees (evaluate(),
the per-epoch validation, `trainctl eval`), and a run with both resumes bit for bit."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from resume_helpers import SPEC as RESUME_SPEC
from resume_helpers import StopAt, make_spec as resume_spec, new_run, resume_run, same_run
from test_cli import eval_json, metrics_of, train
from test_optim_updates import closed_form_ema
from trainctl.data import Dataset
from trainctl.spec import Spec, SpecDoc
from trainctl.train import Callback, Trainer, evaluate, prepare

F64 = torch.float64

SPEC = """\
name: optim-train
seed: 4
device: cpu
data:
  source: {type: blobs, n_samples: 100}
  split: {validation: 0.2, test: 0.1}
  batch_size: 8
  shuffle: true
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 6, activation: tanh}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.05, use_ema: true, ema_momentum: 0.8}
train: {epochs: 2}
"""


def make_spec(text: str = SPEC, **sets: object) -> Spec:
    return Spec.from_doc(SpecDoc.from_text(text, file="optim.yaml")).with_overrides(
        [f"{k}={json.dumps(v)}" for k, v in sets.items()])


# ---- gradient accumulation: N micro-batches = one batch N times larger ------------------------
def float64_setup(batch_size: int, optimizer: dict):
    """The spec's model in float64, trained on 22 fixed float64 samples in order (batches
    of ``batch_size``, the last one short), without validation."""
    setup = prepare(make_spec(**{"optimizer": optimizer, "data.split.validation": 0.0}))
    for v in setup.model.variables:
        v.data = v.data.to(F64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(22, 2))
    y = (x @ [1.0, -2.0] + 0.3 * rng.normal(size=22) > 0).astype(np.int64)
    train = Dataset.from_tensor_slices((x, y)).batch(batch_size)
    splits = dataclasses.replace(setup.splits, train=train,
                                 sizes={**setup.splits.sizes, "train": 22})
    return dataclasses.replace(setup, splits=splits)


@pytest.mark.parametrize("optimizer", [
    {"type": "adamw", "learning_rate": 0.05, "weight_decay": 0.1, "global_clipnorm": 0.3},
    {"type": "sgd", "learning_rate": 0.3, "momentum": 0.9, "nesterov": True},
])
def test_accumulation_equals_a_batch_n_times_larger(optimizer):
    """Micro-batches of 3 accumulated by 2 against batches of 6, for 2 epochs of 22
    samples: updates from 6, 6, 6 and 3 + 1 samples (the partial accumulation is applied at
    the end of the epoch, weighted by batch size) against batches of 6, 6, 6 and 4."""
    big = float64_setup(6, optimizer)
    micro = float64_setup(3, {**optimizer, "gradient_accumulation_steps": 2})
    Trainer(big).fit()
    history = Trainer(micro).fit()
    assert [r["step"] for r in history] == [8, 16]  # batches; the optimizer updated 8 times
    assert big.optimizer.iterations == micro.optimizer.iterations == 8
    for a, b in zip(big.model.variables, micro.model.variables):
        assert a.dtype == F64
        torch.testing.assert_close(b.data, a.data, rtol=1e-10, atol=1e-13)
    first = float64_setup(6, optimizer)  # the weights really moved
    assert not torch.allclose(first.model.variables[0].data, big.model.variables[0].data)


# ---- the moving average is what evaluation sees --------------------------------------------
class RecordWeights(Callback):
    def __init__(self, model):
        self.model, self.weights = model, []

    def on_batch_end(self, step, batch_size, loss):
        self.weights.append({v.name: v.data.clone() for v in self.model.trainable_variables})


def test_evaluate_uses_the_moving_average_of_the_weights():
    setup = prepare(make_spec())
    recorder = RecordWeights(setup.model)
    history = Trainer(setup, callbacks=[recorder]).fit()
    opt, names = setup.optimizer, [v.name for v in setup.model.trainable_variables]
    assert opt.iterations == len(recorder.weights) == history[-1]["step"]
    expected = {n: closed_form_ema([w[n].double() for w in recorder.weights], 0.8)[-1]
                for n in names}
    for v in setup.model.trainable_variables:
        torch.testing.assert_close(opt.get_slot(v, "ema").double(), expected[v.name],
                                   rtol=1e-5, atol=1e-6)
    result = evaluate(setup, setup.splits.validation)
    assert result["loss"] == history[-1]["val_loss"]  # the epoch's validation used it too
    for v in setup.model.trainable_variables:  # the trained weights are back
        assert torch.equal(v.data, recorder.weights[-1][v.name])

    other = prepare(make_spec())  # the same model holding the closed-form averages
    other.model.load_state_dict({n: t.float() for n, t in expected.items()})
    assert evaluate(other, other.splits.validation) == pytest.approx(result, rel=1e-5)
    other.model.load_state_dict(recorder.weights[-1])  # the raw weights score differently
    assert abs(evaluate(other, other.splits.validation)["loss"] - result["loss"]) > 1e-3


def test_trainctl_eval_scores_the_moving_average(tmp_path):
    spec = tmp_path / "ema.yaml"
    spec.write_text(SPEC)
    run = train(spec, tmp_path / "run")
    val_loss = metrics_of(run)[-1]["val_loss"]
    assert eval_json(spec, run, "--split", "validation")["loss"] == pytest.approx(val_loss,
                                                                                  rel=1e-12)
    raw = eval_json(spec, run, "--split", "validation", "--set", "optimizer.use_ema=false")
    assert abs(raw["loss"] - val_loss) > 1e-3


# ---- resume mid-accumulation with a moving average ---------------------------------------------
OPTIMIZER = ("optimizer: {type: adam, learning_rate: 0.02, gradient_accumulation_steps: 3, "
             "use_ema: true, ema_momentum: 0.9, global_clipnorm: 0.5}")


def spec_with_options():
    text = RESUME_SPEC.replace("optimizer: {type: adam, learning_rate: 0.02}", OPTIMIZER)
    assert text != RESUME_SPEC
    return resume_spec(text)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "run"
    new_run(path, spec_with_options()).fit()
    return path


@pytest.mark.parametrize("k", [5, 13, 16])  # 9 batches an epoch: 2, 1 and 1 gradients pending
def test_resume_mid_accumulation_is_bit_identical(tmp_path, reference, k):
    run = tmp_path / "run"
    stopped = new_run(run, spec_with_options(), StopAt(k))
    stopped.fit()
    assert stopped.step == k
    trainer, plan, warnings = resume_run(run, spec_with_options())
    assert plan.entry.name == f"step-{k:09d}" and warnings == []
    opt = trainer.setup.optimizer
    assert opt.accumulator.count == (k % 9) % 3 and opt.average.shadow
    trainer.fit()
    assert same_run(run, reference)
