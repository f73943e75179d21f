"""The training loop: determinism, torch.autograd never involved, per-sample averaging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainctl.autodiff import GradientTape
from trainctl.data import Dataset
from trainctl.spec import Spec, SpecDoc
from trainctl.train import Trainer, evaluate, prepare
from trainctl.train.loop import to_tensors

SPEC = """
name: tiny
seed: 3
data:
  source: {type: blobs, n_samples: 200}
  split: {validation: 0.1, test: 0.2}
  batch_size: 16
  shuffle: true
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dropout, rate: 0.2}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 3}
"""


def make_spec(text: str = SPEC) -> Spec:
    return Spec.from_doc(SpecDoc.from_text(text, file="tiny.yaml"))


def strip_seconds(history):
    return [{k: v for k, v in rec.items() if k != "seconds"} for rec in history]


def test_same_seed_gives_bit_identical_history_and_weights():
    a, b = prepare(make_spec(), "cpu"), prepare(make_spec(), "cpu")
    ha, hb = Trainer(a).fit(), Trainer(b).fit()
    assert strip_seconds(ha) == strip_seconds(hb)
    for va, vb in zip(a.model.variables, b.model.variables):
        assert torch.equal(va.data, vb.data)


def test_other_seed_gives_other_history():
    a = prepare(make_spec(), "cpu")
    b = prepare(make_spec().with_overrides(seed=4), "cpu")
    assert strip_seconds(Trainer(a).fit()) != strip_seconds(Trainer(b).fit())


def test_history_fields_and_steps():
    setup = prepare(make_spec(), "cpu")
    history = Trainer(setup).fit()
    steps_per_epoch = math.ceil(setup.splits.sizes["train"] / 16)
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert [r["step"] for r in history] == [steps_per_epoch * k for k in (1, 2, 3)]
    assert set(history[0]) == {"kind", "epoch", "step", "loss", "accuracy", "val_loss",
                               "val_accuracy", "learning_rate", "seconds"}
    assert history[0]["learning_rate"] == 0.01


def _one_step(setup, persistent=False):
    x, y = to_tensors(next(iter(setup.splits.train.iterate(epoch=0))), setup.device)
    params = setup.model.trainable_variables
    with GradientTape(persistent=persistent) as tape:
        loss = setup.loss(y, setup.model(x, training=True)).mean()
    grads = tape.gradient(loss, params)
    setup.optimizer.step(grads)
    return tape, loss, grads


def _walk_tape(t, seen):
    stack = [t]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        yield t
        if t._node is not None:
            stack.extend(t._node.inputs)


def test_no_torch_tensor_requires_grad_in_a_full_step():
    setup = prepare(make_spec(), "cpu")
    # a persistent tape keeps its graph (a non-persistent one releases it in tape.gradient)
    _, loss, grads = _one_step(setup, persistent=True)
    tensors = list(_walk_tape(loss, set())) + list(grads) + setup.model.variables
    assert len(tensors) > 20
    assert all(not t.data.requires_grad for t in tensors)
    slots, _ = setup.optimizer.state_dict()
    assert slots and all(not s.requires_grad for s in slots.values())


def test_full_step_same_numbers_with_torch_grad_mode_disabled():
    """torch.autograd plays no part: disabling it globally changes no number."""
    a = prepare(make_spec(), "cpu")
    _, loss_a, grads_a = _one_step(a)
    prev = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        b = prepare(make_spec(), "cpu")
        _, loss_b, grads_b = _one_step(b)
    finally:
        torch.set_grad_enabled(prev)
    assert torch.equal(loss_a.data, loss_b.data)
    for ga, gb in zip(grads_a, grads_b):
        assert torch.equal(ga.data, gb.data)
    for va, vb in zip(a.model.variables, b.model.variables):
        assert torch.equal(va.data, vb.data)


def test_evaluate_averages_per_sample_with_a_short_last_batch():
    setup = prepare(make_spec(), "cpu")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2)).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1])
    ds = Dataset.from_tensor_slices((x, y)).batch(4)   # batches of 4 and 1
    got = evaluate(setup, ds)
    with torch.no_grad():
        w1, b1, w2, b2 = (v.data.double() for v in setup.model.variables)
        logits = (torch.relu(torch.from_numpy(x).double() @ w1 + b1) @ w2 + b2)[:, 0]
        target = torch.from_numpy(y).double()
        per = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        acc = ((logits > 0).double() == target).double().mean()
    assert got["loss"] == pytest.approx(per.mean().item(), rel=1e-6)
    assert got["accuracy"] == pytest.approx(acc.item(), abs=1e-12)
    # the mean of batch means would differ here
    batch_means = (per[:4].mean() + per[4:].mean()) / 2
    assert abs(batch_means.item() - per.mean().item()) > 1e-3


def test_unknown_device_in_the_spec_is_located_with_the_other_errors():
    from trainctl.errors import SpecErrors

    text = SPEC.replace("seed: 3\n", "seed: 3\ndevice: tpu\n").replace("units: 8", "units: 0")
    with pytest.raises(SpecErrors) as exc:
        prepare(make_spec(text))
    messages = [str(e) for e in exc.value.errors]
    assert messages[0].startswith("tiny.yaml:4:9: device: unknown device 'tpu'; available:")
    assert messages[1] == "tiny.yaml:13:28: model.layers[0].units: must be > 0, got 0"


def test_empty_device_is_an_error_not_auto():
    from trainctl.errors import SpecErrors

    with pytest.raises(SpecErrors) as exc:
        make_spec(SPEC.replace("seed: 3\n", "seed: 3\ndevice: ''\n"))
    assert "tiny.yaml:4:9: device:" in str(exc.value)
