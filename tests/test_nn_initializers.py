"""Initializer tests: ranges and moments against the formulas of Glorot & Bengio (2010)
and He et al. (2015), with Keras' fan_in / fan_out; seeding."""

from __future__ import annotations

import math

import pytest
import torch

import trainctl as tc
from trainctl.nn.initializers import initializers

CPU = torch.device("cpu")
F32, F64 = torch.float32, torch.float64


def draw(name, shape, dtype=F64, seed=0):
    tc.manual_seed(seed)
    return initializers.get(name)(shape, dtype, CPU)


def test_registered_names():
    assert initializers.names() == ["constant", "glorot_normal", "glorot_uniform", "he_normal",
                                    "he_uniform", "lecun_normal", "lecun_uniform", "ones",
                                    "orthogonal", "random_normal", "random_uniform", "zeros"]


@pytest.mark.parametrize("shape,fan_in,fan_out", [
    ((400, 600), 400, 600),
    ((3, 3, 40, 80), 360, 720),  # receptive field 3*3 multiplies both fans (Keras)
])
def test_glorot_uniform_range_and_variance(shape, fan_in, fan_out):
    w = draw("glorot_uniform", shape)
    assert tuple(w.shape) == shape and w.dtype == F64
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max().item() <= limit
    assert w.abs().max().item() > 0.99 * limit  # the whole range is used
    assert w.var().item() == pytest.approx(limit ** 2 / 3, rel=0.05)
    assert abs(w.mean().item()) < 0.01 * limit


def test_glorot_normal_std():
    w = draw("glorot_normal", (300, 500))
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / 800), rel=0.05)


@pytest.mark.parametrize("shape,fan_in", [((250, 400), 250), ((2, 2, 30, 50), 120)])
def test_he_normal_std(shape, fan_in):
    w = draw("he_normal", shape)
    assert w.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)
    assert abs(w.mean().item()) < 0.05 * math.sqrt(2.0 / fan_in)


def test_he_uniform_range_and_variance():
    w = draw("he_uniform", (250, 400))
    limit = math.sqrt(6.0 / 250)
    assert w.abs().max().item() <= limit
    assert w.var().item() == pytest.approx(limit ** 2 / 3, rel=0.05)


def test_one_dimensional_fans_follow_keras():
    # Keras: fan_in = fan_out = shape[0] for a 1-D shape
    w = draw("glorot_uniform", (100000,))
    limit = math.sqrt(6.0 / 200000)
    assert w.abs().max().item() <= limit
    assert w.var().item() == pytest.approx(limit ** 2 / 3, rel=0.05)


@pytest.mark.parametrize("name,value", [("zeros", 0.0), ("ones", 1.0)])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_constant_initializers(name, value, dtype):
    w = draw(name, (3, 4), dtype)
    assert w.dtype == dtype and tuple(w.shape) == (3, 4)
    assert torch.equal(w, torch.full((3, 4), value, dtype=dtype))


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal"])
def test_same_seed_same_values(name):
    a = draw(name, (20, 30), F32, seed=7)
    b = draw(name, (20, 30), F32, seed=7)
    c = draw(name, (20, 30), F32, seed=8)
    assert a.dtype == F32
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seeded_layer_weights_are_reproducible():
    from trainctl.nn.layers import Dense

    def kernel(seed):
        tc.manual_seed(seed)
        layer = Dense(units=8)
        layer.build((5,))
        return layer.kernel.data.clone()

    assert torch.equal(kernel(1), kernel(1))
    assert not torch.equal(kernel(1), kernel(2))
