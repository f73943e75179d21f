"""Convolution and pooling layers against torch.nn (float64): forward, gradients via our
tape vs torch.autograd, Keras' fan-in for kernels, 'same' padding as TensorFlow's rule,
and shape errors. torch.nn is used only as an oracle."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn.layers import (AveragePooling2D, Conv1D, Conv2D, Conv2DTranspose,
                                GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D)

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def to64(layer, seed=10):
    """Replace every weight by float64 random values (same shapes)."""
    for i, w in enumerate(layer.weights):
        w.data = randn(*w.shape, seed=seed + i)
    return layer


def tf_same_pad(n, k, s, d=1):
    """TensorFlow's 'same' padding (before, after) along one axis, written independently."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("opts", [
    dict(filters=4, kernel_size=3),
    dict(filters=4, kernel_size=(3, 2), strides=2, padding="same"),
    dict(filters=6, kernel_size=2, dilation_rate=2, groups=2, activation="relu"),
    dict(filters=3, kernel_size=3, strides=(2, 1), padding="same", use_bias=False),
])
def test_conv2d_equals_torch(opts):
    layer = Conv2D(**opts)
    out_shape = layer.build((2, 7, 6))
    to64(layer)
    x = randn(3, 2, 7, 6, seed=1)
    k = layer.kernel.data
    kh, kw = k.shape[2:]
    s = opts.get("strides", 1)
    sh, sw = (s, s) if isinstance(s, int) else s
    d = opts.get("dilation_rate", 1)
    xp = x
    if opts.get("padding") == "same":
        ph, pw = tf_same_pad(7, kh, sh, d), tf_same_pad(6, kw, sw, d)
        xp = F.pad(x, (*pw, *ph))
    conv = torch.nn.Conv2d(2, opts["filters"], (kh, kw), stride=(sh, sw), dilation=d,
                           groups=opts.get("groups", 1), bias=opts.get("use_bias", True),
                           dtype=F64)
    with torch.no_grad():
        conv.weight.copy_(k)
        if layer.bias is not None:
            conv.bias.copy_(layer.bias.data)
    want = conv(xp)
    if opts.get("activation") == "relu":
        want = torch.relu(want)
    y = layer(tc.tensor(x))
    assert y.shape == (3, *out_shape)
    torch.testing.assert_close(y.data, want.detach(), rtol=1e-12, atol=1e-12)


def test_conv2d_gradients_equal_torch_autograd():
    layer = Conv2D(filters=3, kernel_size=3, strides=2, padding="same", activation="tanh")
    layer.build((2, 5, 5))
    to64(layer)
    xt, up = randn(2, 2, 5, 5, seed=3), randn(2, 3, 3, 3, seed=4)
    x = tc.Variable(xt, dtype="float64")
    with tc.GradientTape() as tape:
        loss = tc.ops.sum(layer(x) * tc.tensor(up))
    gk, gb, gx = tape.gradient(loss, [layer.kernel, layer.bias, x])
    k = layer.kernel.data.clone().requires_grad_(True)
    b = layer.bias.data.clone().requires_grad_(True)
    xr = xt.clone().requires_grad_(True)
    y = torch.tanh(F.conv2d(F.pad(xr, (1, 1, 1, 1)), k, b, stride=2))
    torch.autograd.backward((y * up).sum())
    for ours, theirs in ((gk, k.grad), (gb, b.grad), (gx, xr.grad)):
        torch.testing.assert_close(ours.data, theirs, rtol=1e-10, atol=1e-12)


def test_conv1d_equals_torch():
    layer = Conv1D(filters=4, kernel_size=3, strides=2, padding="same")
    assert layer.build((3, 9)) == (4, 5)
    to64(layer)
    x = randn(2, 3, 9, seed=5)
    want = F.conv1d(F.pad(x, tf_same_pad(9, 3, 2)), layer.kernel.data, layer.bias.data, stride=2)
    torch.testing.assert_close(layer(tc.tensor(x)).data, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding, strides", [("valid", 2), ("same", 2), ("valid", 1)])
def test_conv2d_transpose_equals_torch(padding, strides):
    layer = Conv2DTranspose(filters=3, kernel_size=3, strides=strides, padding=padding)
    h, w = 4, 5
    out = layer.build((2, h, w))
    assert layer.kernel.shape == (2, 3, 3, 3)  # [C, filters, kh, kw], torch's layout
    to64(layer)
    x = randn(2, 2, h, w, seed=6)
    full = F.conv_transpose2d(x, layer.kernel.data, layer.bias.data, stride=strides)
    if padding == "same":  # Keras crops the full output to H·s, TensorFlow's split
        ph = tf_same_pad(h * strides, 3, strides)
        pw = tf_same_pad(w * strides, 3, strides)
        full = full[:, :, ph[0]:ph[0] + h * strides, pw[0]:pw[0] + w * strides]
    assert out == tuple(full.shape[1:])
    torch.testing.assert_close(layer(tc.tensor(x)).data, full, rtol=1e-12, atol=1e-12)


def test_kernel_initialised_with_keras_fans():
    tc.manual_seed(0)
    layer = Conv2D(filters=64, kernel_size=3, kernel_initializer="he_uniform")
    layer.build((8, 6, 6))
    assert layer.kernel.shape == (64, 8, 3, 3)
    limit = math.sqrt(6.0 / (8 * 9))  # fan_in = in channels · receptive field
    values = layer.kernel.data
    assert values.abs().max().item() <= limit
    assert values.abs().max().item() > 0.95 * limit
    # uniform on [-l, l]: variance l²/3
    assert abs(values.var().item() - limit ** 2 / 3) < 0.1 * limit ** 2 / 3


@pytest.mark.parametrize("layer_cls, torch_pool", [(MaxPooling2D, F.max_pool2d),
                                                    (AveragePooling2D, None)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_pooling_equals_torch(layer_cls, torch_pool, padding):
    layer = layer_cls(pool_size=(2, 3), strides=2, padding=padding)
    out = layer.build((3, 5, 7))
    x = randn(2, 3, 5, 7, seed=7)
    ph, pw = (tf_same_pad(5, 2, 2), tf_same_pad(7, 3, 2)) if padding == "same" else ((0, 0), (0, 0))
    if torch_pool is not None:
        want = F.max_pool2d(F.pad(x, (*pw, *ph), value=-math.inf), (2, 3), 2)
    else:  # TF's average over the cells inside the input only
        sums = F.avg_pool2d(F.pad(x, (*pw, *ph)), (2, 3), 2, divisor_override=1)
        counts = F.avg_pool2d(F.pad(torch.ones_like(x), (*pw, *ph)), (2, 3), 2, divisor_override=1)
        want = sums / counts
    y = layer(tc.tensor(x))
    assert y.shape == (2, *out)
    torch.testing.assert_close(y.data, want, rtol=1e-12, atol=1e-12)


def test_global_pooling_equals_torch():
    x = randn(2, 3, 4, 5, seed=8)
    avg, mx = GlobalAveragePooling2D(), GlobalMaxPooling2D(keepdims=True)
    assert avg.build((3, 4, 5)) == (3,) and mx.build((3, 4, 5)) == (3, 1, 1)
    torch.testing.assert_close(avg(tc.tensor(x)).data, x.mean(dim=(2, 3)))
    torch.testing.assert_close(mx(tc.tensor(x)).data, F.adaptive_max_pool2d(x, 1))


@pytest.mark.parametrize("layer, shape, words", [
    (Conv2D(filters=2, kernel_size=3), (3, 8), "channels-first"),
    (Conv2D(filters=2, kernel_size=5), (1, 3, 8), "larger than the input"),
    (Conv2D(filters=3, kernel_size=1, groups=2), (4, 3, 3), "divisible by groups"),
    (Conv1D(filters=2, kernel_size=3), (3, 4, 5), "[channels, length]"),
    (MaxPooling2D(pool_size=4), (1, 3, 8), "larger than the input"),
    (GlobalAveragePooling2D(), (3, 4), "channels-first"),
])
def test_shape_errors(layer, shape, words):
    with pytest.raises(ShapeError, match=words.replace("[", r"\[")):
        layer.build(shape)
