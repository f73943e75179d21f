"""Layer tests: one row per registered layer (config round trip, build shape = forward
shape), Dense against torch (forward and gradients in float64), Dropout statistics,
Flatten, Activation, and invalid configs.

torch, torch.autograd and torch.nn.functional are used only as oracles.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

import trainctl as tc
from trainctl.nn.activations import activations
from trainctl.nn.layers import Activation, Dense, Dropout, Flatten, layers

F64 = torch.float64

# One row per registered layer: (options, input shape without batch, expected output shape).
ROWS = {
    "dense": ({"units": 5, "activation": "relu", "kernel_initializer": "he_normal"}, (3, 4), (3, 5)),
    "activation": ({"activation": "tanh"}, (2, 3), (2, 3)),
    "dropout": ({"rate": 0.5, "name": "drop"}, (7,), (7,)),
    "flatten": ({}, (2, 3, 4), (24,)),
    "conv1d": ({"filters": 4, "kernel_size": 3, "padding": "same", "strides": 2}, (2, 9), (4, 5)),
    "conv2d": ({"filters": 4, "kernel_size": [3, 2], "activation": "relu",
                "kernel_regularizer": {"l1": 0.0, "l2": 0.01}}, (2, 6, 5), (4, 4, 4)),
    "conv2d_transpose": ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
                         (2, 4, 5), (3, 8, 10)),
    "max_pooling2d": ({"pool_size": 2, "padding": "same"}, (3, 5, 4), (3, 3, 2)),
    "average_pooling2d": ({"pool_size": [2, 3], "strides": 1}, (3, 5, 4), (3, 4, 2)),
    "global_average_pooling2d": ({}, (3, 5, 4), (3,)),
    "global_max_pooling2d": ({"keepdims": True}, (3, 5, 4), (3, 1, 1)),
    "reshape": ({"target_shape": [4, -1]}, (2, 6), (4, 3)),
    "permute": ({"dims": [2, 3, 1]}, (2, 3, 4), (3, 4, 2)),
    "batch_normalization": ({"momentum": 0.9, "epsilon": 1e-5}, (3, 4, 4), (3, 4, 4)),
    "layer_normalization": ({"axis": [-2, -1]}, (3, 4), (3, 4)),
    "embedding": ({"input_dim": 10, "output_dim": 4}, (5,), (5, 4)),
    "positional_embedding": ({"sequence_length": 8}, (5, 4), (5, 4)),
    "add": ({}, [(2, 3), (2, 3), (2, 3)], (2, 3)),
    "subtract": ({}, [(4,), (4,)], (4,)),
    "multiply": ({}, [(2, 3), (2, 3)], (2, 3)),
    "concatenate": ({"axis": 1}, [(2, 3), (4, 3)], (6, 3)),
    "multi_head_attention": ({"num_heads": 2, "key_dim": 3, "use_causal_mask": True},
                             [(5, 4)], (5, 4)),
    "lstm": ({"units": 3, "return_sequences": True}, (4, 2), (4, 3)),
    "gru": ({"units": 3}, (4, 2), (3,)),
}


def test_every_registered_layer_has_a_row():
    assert sorted(ROWS) == layers.names()


@pytest.mark.parametrize("name", layers.names())
def test_config_round_trip(name):
    options, _, _ = ROWS[name]
    cls = layers.get(name)
    layer = cls(**options)
    config = layer.get_config()
    assert config["type"] == name
    for key, value in options.items():
        assert config[key] == value
    again = cls.from_config(config)
    assert type(again) is cls
    assert again.get_config() == config
    # the round trip also goes through the registry, as a spec would
    assert layers.get(config["type"]).from_config(config).get_config() == config


@pytest.mark.parametrize("name", layers.names())
@pytest.mark.parametrize("training", [False, True])
def test_build_shape_matches_forward(name, training):
    options, in_shape, out_shape = ROWS[name]
    tc.manual_seed(0)
    layer = layers.get(name)(**options)
    assert layer.build(in_shape) == out_shape
    gen = torch.Generator().manual_seed(1)
    if name == "embedding":
        x = tc.tensor(torch.randint(0, options["input_dim"], (2, *in_shape), generator=gen))
    elif layer.multi_input():
        x = [tc.tensor(torch.randn((2, *s), generator=gen)) for s in in_shape]
    else:
        x = tc.tensor(torch.randn((2, *in_shape), generator=gen))
    y = layer(x, training=training)
    assert y.shape == (2, *out_shape)


def test_round_trip_keeps_the_layer_name_and_weight_names():
    layer = Dense(units=2, name="head")
    layer.build((3,))
    again = Dense.from_config(layer.get_config())
    again.build((3,))
    assert again.name == "head"
    assert [w.name for w in again.weights] == ["head/kernel", "head/bias"]
    assert Dense(units=2).get_config()["name"] == "dense"


# ---- Dense ------------------------------------------------------------------------------
def dense64(units, d, activation=None, use_bias=True, seed=0):
    """A built Dense whose weights are replaced by float64 copies of random values."""
    layer = Dense(units=units, activation=activation, use_bias=use_bias)
    layer.build((d,))
    gen = torch.Generator().manual_seed(seed)
    layer.kernel.data = torch.randn(d, units, generator=gen, dtype=F64)
    if use_bias:
        layer.bias.data = torch.randn(units, generator=gen, dtype=F64)
    return layer


TORCH_ACT = {
    None: lambda z: z,
    "linear": lambda z: z,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "log_softmax": lambda z: torch.log_softmax(z, dim=-1),
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.2),  # Keras 3's default slope
    "softsign": F.softsign,
    "hard_sigmoid": lambda z: F.relu6(z + 3) / 6,
    "log_sigmoid": F.logsigmoid,
}


def test_every_activation_has_an_oracle():
    assert sorted(k for k in TORCH_ACT if k) == activations.names()


@pytest.mark.parametrize("activation", list(TORCH_ACT))
def test_dense_forward_equals_torch(activation):
    layer = dense64(4, 3, activation)
    xt = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    y = layer(tc.tensor(xt))
    want = TORCH_ACT[activation](xt @ layer.kernel.data + layer.bias.data)
    assert y.dtype == F64
    torch.testing.assert_close(y.data, want, rtol=1e-12, atol=1e-12)


def test_dense_without_bias_and_on_3d_inputs():
    layer = dense64(4, 3, use_bias=False)
    assert layer.bias is None and len(layer.weights) == 1
    xt = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    y = layer(tc.tensor(xt))
    assert y.shape == (2, 6, 4)
    torch.testing.assert_close(y.data, xt @ layer.kernel.data, rtol=1e-12, atol=1e-12)


def test_dense_default_weights():
    tc.manual_seed(0)
    layer = Dense(units=6)
    assert layer.build((4,)) == (6,)
    assert layer.kernel.shape == (4, 6) and layer.bias.shape == (6,)
    assert layer.kernel.name == "dense/kernel" and layer.bias.name == "dense/bias"
    assert layer.kernel.dtype == torch.float32
    assert torch.equal(layer.bias.data, torch.zeros(6))
    limit = (6 / (4 + 6)) ** 0.5
    assert layer.kernel.data.abs().max().item() <= limit
    assert layer.kernel.data.std().item() > 0


@pytest.mark.parametrize("activation", ["relu", "tanh", "softmax", None])
def test_dense_gradients_equal_torch_autograd(activation):
    layer = dense64(4, 3, activation, seed=4)
    xt = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    upstream = torch.randn(5, 4, generator=torch.Generator().manual_seed(6), dtype=F64)
    x = tc.Variable(xt, dtype="float64", name="x")
    with tc.GradientTape() as tape:
        loss = tc.ops.sum(layer(x) * tc.tensor(upstream))
    gk, gb, gx = tape.gradient(loss, [layer.kernel, layer.bias, x])

    k = layer.kernel.data.clone().requires_grad_(True)
    b = layer.bias.data.clone().requires_grad_(True)
    xr = xt.clone().requires_grad_(True)
    ref = (TORCH_ACT[activation](xr @ k + b) * upstream).sum()
    rk, rb, rx = torch.autograd.grad(ref, [k, b, xr])
    torch.testing.assert_close(loss.data, ref.detach(), rtol=1e-12, atol=1e-12)
    for ours, theirs in ((gk, rk), (gb, rb), (gx, rx)):
        assert ours.shape == tuple(theirs.shape)
        torch.testing.assert_close(ours.data, theirs, rtol=1e-10, atol=1e-12)


def test_dense_rejects_scalar_inputs():
    with pytest.raises(tc.TrainctlError, match=r"dense.*\[\]"):
        Dense(units=2).build(())


# ---- Dropout ----------------------------------------------------------------------------
def test_dropout_is_identity_at_evaluation():
    x = tc.tensor(torch.randn(100, 10, generator=torch.Generator().manual_seed(7)))
    layer = Dropout(rate=0.5)
    layer.build((10,))
    assert torch.equal(layer(x, training=False).data, x.data)
    assert torch.equal(layer(x).data, x.data)


def test_dropout_rate_zero_is_identity_in_training():
    x = tc.tensor(torch.randn(10, 10, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(Dropout(rate=0.0)(x, training=True).data, x.data)


def test_dropout_training_statistics_and_scale():
    tc.manual_seed(11)
    xt = torch.rand(1000, 1000, generator=torch.Generator().manual_seed(8), dtype=F64) + 0.5
    y = Dropout(rate=0.25)(tc.tensor(xt), training=True).data
    kept = y != 0
    assert abs(kept.double().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[kept], xt[kept] / 0.75, rtol=1e-15, atol=0)
    assert torch.equal(y[~kept], torch.zeros_like(y[~kept]))


def test_dropout_is_deterministic_under_manual_seed():
    x = tc.tensor(torch.ones(50, 40))
    layer = Dropout(rate=0.3)
    tc.manual_seed(123)
    a = layer(x, training=True).data.clone()
    b = layer(x, training=True).data.clone()
    tc.manual_seed(123)
    c = layer(x, training=True).data.clone()
    assert torch.equal(a, c)
    assert not torch.equal(a, b)  # the generator advances between calls


def test_dropout_gradient_uses_the_same_mask():
    tc.manual_seed(5)
    x = tc.Variable(torch.ones(20, 30, dtype=F64), name="x")
    with tc.GradientTape() as tape:
        y = Dropout(rate=0.4)(x, training=True)
        loss = tc.ops.sum(y)
    g = tape.gradient(loss, x)
    torch.testing.assert_close(g.data, y.data, rtol=0, atol=0)  # d(sum(x*m))/dx = m = y at x=1


# ---- Flatten and Activation ---------------------------------------------------------------
def test_flatten_shape_and_values():
    xt = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    layer = Flatten()
    assert layer.build((3, 4, 5)) == (60,)
    y = layer(tc.tensor(xt))
    assert torch.equal(y.data, xt.reshape(2, 60))


@pytest.mark.parametrize("activation", [k for k in TORCH_ACT if k])
def test_activation_layer_equals_torch(activation):
    xt = torch.randn(4, 6, generator=torch.Generator().manual_seed(9), dtype=F64) * 3
    layer = Activation(activation=activation)
    assert layer.build((6,)) == (6,)
    torch.testing.assert_close(layer(tc.tensor(xt)).data, TORCH_ACT[activation](xt),
                               rtol=1e-12, atol=1e-12)


# ---- invalid configs ----------------------------------------------------------------------
@pytest.mark.parametrize("make,words", [
    (lambda: Dense(units=0), ["units", "greater than 0"]),
    (lambda: Dense(units=-3), ["units", "greater than 0"]),
    (lambda: Dense(units=True), ["units", "integer"]),
    (lambda: Dropout(rate=1.0), ["rate", "less than 1"]),
    (lambda: Dropout(rate=-0.1), ["rate", "greater than or equal to 0"]),
    (lambda: Dense(units=3, activation="rleu"), ["unknown activation 'rleu'", "did you mean 'relu'"]),
    (lambda: Activation(activation="rleu"), ["unknown activation 'rleu'", "did you mean 'relu'"]),
    (lambda: Dense(units=3, kernel_initializer="glorot_unifrom"),
     ["kernel_initializer", "unknown initializer 'glorot_unifrom'", "did you mean 'glorot_uniform'"]),
    (lambda: Dense(units=3, bias_initializer="bogus"), ["bias_initializer", "unknown initializer 'bogus'"]),
    (lambda: Dense(units=3, unit=4), ["unit", "Extra inputs are not permitted"]),
    (lambda: Dense.from_config({"type": "dense", "units": 2, "actvation": "relu"}), ["actvation"]),
])
def test_invalid_configs_raise_validation_errors(make, words):
    with pytest.raises(ValidationError) as info:
        make()
    for word in words:
        assert word in str(info.value)
