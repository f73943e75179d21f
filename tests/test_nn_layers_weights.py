"""Initializers (lecun, constant, orthogonal, random_*) by their defining statistics,
initializer and regularizer options in specs, the regularization penalty (value and
gradient against torch.autograd), and its place in training: added to the loss, reported
apart as ``regularization_loss``. torch is used only as an oracle."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

import trainctl as tc
from trainctl.nn.initializers import initializers, make_initializer
from trainctl.nn.layers import Conv2D, Dense, Embedding
from trainctl.nn.regularizers import regularization_loss
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.kinds.weights import ConstantInitializer, OrthogonalInitializer

F64 = torch.float64


def draw(name, shape):
    tc.manual_seed(0)
    return initializers.get(name)(shape, torch.float64, torch.device("cpu"))


@pytest.mark.parametrize("name, shape, var", [
    ("lecun_uniform", (200, 300), 3.0 / 200 / 3),   # U(-l, l), l² = 3/fan_in: var l²/3
    ("lecun_normal", (200, 300), 1.0 / 200),
    ("lecun_normal", (3, 3, 20, 30), 1.0 / (9 * 20)),  # fan_in counts the receptive field
    ("random_uniform", (100, 100), 0.05 ** 2 / 3),
    ("random_normal", (100, 100), 0.05 ** 2),
])
def test_initializer_variances(name, shape, var):
    values = draw(name, shape)
    assert values.shape == shape and values.dtype == F64
    assert abs(values.mean().item()) < 0.05 * math.sqrt(var) * 10
    assert abs(values.var().item() / var - 1) < 0.05
    if "uniform" in name:
        assert values.abs().max().item() <= math.sqrt(3 * var)


@pytest.mark.parametrize("shape", [(6, 6), (4, 10), (10, 4), (2, 3, 4)])
def test_orthogonal(shape):
    q = draw("orthogonal", shape).reshape(-1, shape[-1])
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    torch.testing.assert_close(gram, torch.eye(small, dtype=F64), rtol=0, atol=1e-12)
    scaled = make_initializer(OrthogonalInitializer(type="orthogonal", gain=2.0))
    tc.manual_seed(0)
    torch.testing.assert_close(scaled(shape, F64, torch.device("cpu")).reshape(q.shape), 2 * q)
    with pytest.raises(ValueError, match="rank >= 2"):
        draw("orthogonal", (5,))


def test_constant_and_options_in_a_layer():
    fn = make_initializer(ConstantInitializer(type="constant", value=0.25))
    assert torch.equal(fn((2, 3), F64, torch.device("cpu")), torch.full((2, 3), 0.25, dtype=F64))
    assert torch.equal(draw("constant", (2,)), torch.zeros(2, dtype=F64))
    layer = Dense(units=2, bias_initializer={"type": "constant", "value": 0.5},
                  kernel_initializer="lecun_normal")
    layer.build((3,))
    assert torch.equal(layer.bias.data, torch.full((2,), 0.5))
    again = Dense.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert layer.get_config()["bias_initializer"] == {"type": "constant", "value": 0.5}


@pytest.mark.parametrize("options, words", [
    ({"kernel_initializer": "lecun"}, "unknown initializer 'lecun'"),
    ({"kernel_initializer": {"type": "he_normal"}}, "type: constant or type: orthogonal"),
    ({"kernel_initializer": {"type": "constant", "val": 1}}, "val"),
    ({"kernel_regularizer": {"l2": -1.0}}, "greater than or equal to 0"),
    ({"kernel_regularizer": {"l3": 1.0}}, "l3"),
])
def test_bad_weight_options(options, words):
    with pytest.raises(ValidationError, match=words):
        Dense(units=2, **options)


def test_regularization_loss_value_and_gradients_equal_torch():
    dense = Dense(units=3, kernel_regularizer={"l1": 0.1, "l2": 0.01},
                  bias_regularizer={"l2": 0.5})
    dense.build((4,))
    conv = Conv2D(filters=2, kernel_size=2, kernel_regularizer={"l2": 0.2})
    conv.build((1, 3, 3))
    emb = Embedding(input_dim=5, output_dim=2, embeddings_regularizer={"l1": 0.3})
    emb.build((2,))
    plain = Dense(units=2)
    plain.build((2,))
    assert plain.regularization_loss() is None and regularization_loss([plain]) is None
    for i, w in enumerate(dense.weights + conv.weights + emb.weights):
        w.data = torch.randn(w.shape, generator=torch.Generator().manual_seed(i), dtype=F64)
    layers = [dense, conv, emb, plain, dense]  # a layer listed twice counts once
    with tc.GradientTape() as tape:
        penalty = regularization_loss(layers)
    ours = tape.gradient(penalty, [dense.kernel, dense.bias, conv.kernel, conv.bias,
                                   emb.embeddings])
    k, b, ck, cb, e = (w.data.clone().requires_grad_(True) for w in
                       (dense.kernel, dense.bias, conv.kernel, conv.bias, emb.embeddings))
    want = (0.1 * k.abs().sum() + 0.01 * (k ** 2).sum() + 0.5 * (b ** 2).sum()
            + 0.2 * (ck ** 2).sum() + 0.3 * e.abs().sum())
    want.backward()
    torch.testing.assert_close(penalty.data, want.detach())
    assert ours[3] is None or torch.count_nonzero(ours[3].data) == 0  # conv bias: none
    for g, t in zip([ours[i] for i in (0, 1, 2, 4)], (k, b, ck, e)):
        torch.testing.assert_close(g.data, t.grad)


SPEC = """
name: reg
seed: 0
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 32
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu, kernel_regularizer: {l2: REG}}
    - {type: dense, units: 3, kernel_regularizer: {l1: REG}}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: {type: sgd, learning_rate: 0.1}
train: {epochs: 3}
"""


def fit(reg: float):
    from trainctl.train import Trainer, prepare
    spec = Spec.from_doc(SpecDoc.from_text(SPEC.replace("REG", str(reg)), "reg.yaml"))
    setup = prepare(spec, device="cpu")
    records = Trainer(setup).fit()
    return setup, records


def test_training_adds_the_penalty_and_reports_it_apart():
    setup, records = fit(0.01)
    first, second = setup.model.layers
    want = (0.01 * (first.kernel.data.double() ** 2).sum()
            + 0.01 * second.kernel.data.double().abs().sum()).item()
    assert records[-1]["regularization_loss"] == pytest.approx(want, rel=1e-5)
    # the penalty pulls the weights in: a strong one gives smaller weights than none
    unreg, plain = fit(0.0)
    assert "regularization_loss" not in plain[-1]
    strong, _ = fit(0.3)

    def norm(setup):
        return sum(float((w.data ** 2).sum()) for w in setup.model.variables
                   if w.name.endswith("kernel"))
    assert norm(strong) < 0.8 * norm(unreg)
