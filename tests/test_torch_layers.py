"""Every registered layer type against its plain-PyTorch translation (trainctl.check.torch_layers,
the reference of ``bench --compare-torch``): in float64, with random weights copied in, our
layer's output and our tape's gradients (input and every weight) equal the torch module's
output and torch.autograd's gradients, in training and in evaluation mode. This proves the
translations and doubles as an oracle test of our layers (torch.nn's own implementations).
A registered layer type without a row here fails the suite."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.check.torch_layers import ACTIVATIONS, torch_layers, translate_layer
from trainctl.errors import TrainctlError
from trainctl.nn.activations import activations
from trainctl.nn.layers import layers

F64 = torch.float64
N = 3

# (type, options, input shape(s) without the batch axis; a list of shapes = a multi-input call)
CASES = [
    ("dense", {"units": 4, "activation": "tanh"}, (5,)),
    ("dense", {"units": 2, "use_bias": False}, (3, 5)),
    ("activation", {"activation": "gelu"}, (4,)),
    ("dropout", {"rate": 0.0}, (4,)),
    ("flatten", {}, (2, 3, 2)),
    ("conv1d", {"filters": 4, "kernel_size": 3, "padding": "same", "strides": 2}, (2, 9)),
    ("conv1d", {"filters": 4, "kernel_size": 2, "dilation_rate": 2, "groups": 2,
                "activation": "relu"}, (2, 8)),
    ("conv2d", {"filters": 3, "kernel_size": 3, "padding": "same", "strides": 2}, (2, 6, 7)),
    ("conv2d", {"filters": 4, "kernel_size": [2, 3], "dilation_rate": [2, 1], "groups": 2,
                "use_bias": False}, (2, 7, 6)),
    ("conv2d_transpose", {"filters": 3, "kernel_size": 3, "padding": "same", "strides": 2},
     (2, 4, 5)),
    ("conv2d_transpose", {"filters": 2, "kernel_size": 2, "strides": 3}, (2, 3, 3)),
    ("conv2d_transpose", {"filters": 2, "kernel_size": 3, "dilation_rate": 2,
                          "activation": "sigmoid"}, (2, 3, 4)),
    ("max_pooling2d", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 7)),
    ("max_pooling2d", {}, (2, 4, 6)),
    ("average_pooling2d", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 7)),
    ("average_pooling2d", {"pool_size": [2, 3]}, (2, 4, 6)),
    ("global_average_pooling2d", {}, (3, 4, 5)),
    ("global_max_pooling2d", {"keepdims": True}, (3, 4, 5)),
    ("reshape", {"target_shape": [3, -1]}, (2, 6)),
    ("permute", {"dims": [3, 1, 2]}, (2, 3, 4)),
    ("batch_normalization", {}, (6,)),
    ("batch_normalization", {"momentum": 0.8}, (3, 4, 5)),
    ("batch_normalization", {"axis": -1, "scale": False}, (4, 3)),
    ("layer_normalization", {}, (4, 6)),
    ("layer_normalization", {"axis": [1, 2], "center": False}, (3, 4)),
    ("layer_normalization", {"axis": 1}, (3, 4, 2)),
    ("embedding", {"input_dim": 7, "output_dim": 3}, (5,)),
    ("positional_embedding", {"sequence_length": 6}, (4, 3)),
    ("positional_embedding", {"sequence_length": 6, "learned": False}, (4, 4)),
    ("add", {}, [(2, 3), (2, 3), (2, 3)]),
    ("subtract", {}, [(4,), (4,)]),
    ("multiply", {}, [(2, 3), (2, 3)]),
    ("concatenate", {}, [(2, 3), (2, 4)]),
    ("concatenate", {"axis": 1}, [(2, 3), (1, 3)]),
    ("multi_head_attention", {"num_heads": 2, "key_dim": 3}, (5, 4)),
    ("multi_head_attention", {"num_heads": 3, "key_dim": 2, "value_dim": 4,
                              "use_causal_mask": True}, [(5, 4), (6, 3), (6, 2)]),
    ("multi_head_attention", {"num_heads": 1, "key_dim": 4, "use_bias": False}, [(4, 4), (4, 4)]),
    ("lstm", {"units": 3}, (5, 4)),
    ("lstm", {"units": 2, "return_sequences": True, "use_bias": False}, (4, 3)),
    ("gru", {"units": 3, "return_sequences": True}, (5, 4)),
    ("gru", {"units": 2}, (4, 3)),
]


def _ids(case):
    kind, options, _ = case
    return kind + "".join(f"-{k}={v}" for k, v in options.items()).replace(" ", "")


def randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _built(kind, options, shapes):
    """Our layer built for ``shapes``, every weight random in float64 (variances > 0)."""
    layer = layers.get(kind)(**options)
    layer.input_shape = shapes
    layer.output_shape = layer.build(shapes)
    for i, w in enumerate(layer.weights):
        w.data = 0.5 * randn(*w.shape, seed=100 + i)
        if w.name.endswith("moving_variance"):
            w.data = w.data.abs() + 0.5
    if kind == "positional_embedding" and not options.get("learned", True):
        layer.positions = tc.Tensor(layer.positions.data.to(F64))
    return layer


def _inputs(kind, options, shapes):
    multi = isinstance(shapes, list)
    xs = [randn(N, *s, seed=7 + i) for i, s in enumerate(shapes if multi else [shapes])]
    if kind == "embedding":  # whole-number ids as floats, as a numeric data source gives
        xs = [torch.randint(0, options["input_dim"], (N, *shapes),
                            generator=torch.Generator().manual_seed(3)).to(F64)]
    return xs, multi


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_layer_equals_its_torch_translation(case, training):
    kind, options, shapes = case
    layer = _built(kind, options, shapes)
    xs, multi = _inputs(kind, options, shapes)
    translation = translate_layer(layer)
    module = translation.module.train(training)
    differentiable = kind != "embedding"  # ids carry no gradient
    ours_in = [tc.Variable(x.clone(), dtype="float64") for x in xs]
    theirs_in = [x.clone().requires_grad_(differentiable) for x in xs]
    with tc.GradientTape() as tape:
        y = layer(ours_in if multi else ours_in[0], training=training)
    up = randn(*y.shape, seed=99)
    with tape:
        loss = tc.ops.sum(y * tc.tensor(up))
    trainable = layer.trainable_weights
    grads = tape.gradient(loss, (ours_in if differentiable else []) + trainable)
    expect = module(theirs_in if multi else theirs_in[0])
    torch.testing.assert_close(y.data, expect.detach(), rtol=1e-9, atol=1e-10)
    (expect * up).sum().backward()
    if differentiable:
        for ours, theirs in zip(grads, theirs_in):
            torch.testing.assert_close(ours.data, theirs.grad, rtol=1e-9, atol=1e-10)
    by_var = {id(v): (params, fn) for v, params, fn in translation.pairs}
    assert set(by_var) == {id(v) for v in trainable}
    for var, g in zip(trainable, grads[len(grads) - len(trainable):]):
        params, fn = by_var[id(var)]
        torch.testing.assert_close(fn(*(p.detach() for p in params)), var.data)  # weights in
        torch.testing.assert_close(g.data, fn(*(p.grad for p in params)), rtol=1e-9, atol=1e-10)


def test_batch_normalization_moving_statistics_follow_keras_momentum():
    layer = _built("batch_normalization", {"momentum": 0.7}, (4,))
    module = translate_layer(layer).module.train()
    x = randn(8, 4, seed=5)
    layer(tc.tensor(x), training=True)
    module(x)
    torch.testing.assert_close(module.running_mean, layer.moving_mean.data)
    # torch's running variance uses the unbiased batch variance, Keras' the biased one
    n = x.shape[0]
    biased = module.running_var - 0.3 * x.var(dim=0) + 0.3 * x.var(dim=0) * (n - 1) / n
    torch.testing.assert_close(biased, layer.moving_variance.data)


def test_every_registered_layer_type_has_a_translation_and_a_case():
    assert set(layers.names()) == set(torch_layers.names())
    assert set(layers.names()) == {kind for kind, _, _ in CASES}


@pytest.mark.parametrize("name", activations.names())
def test_every_activation_translates(name):
    x = randn(4, 5, seed=1)
    ours = activations.get(name)(tc.tensor(x)).data
    torch.testing.assert_close(ACTIVATIONS[name]()(x), ours, rtol=1e-12, atol=1e-12)


def test_recurrent_activations_torch_cannot_express_are_named():
    layer = _built("lstm", {"units": 2, "activation": "relu"}, (3, 2))
    with pytest.raises(TrainctlError, match="'lstm'.*relu / sigmoid"):
        translate_layer(layer)
