"""Activations: values at extreme inputs, the documented gradients at kinks, second
derivatives through nested GradientTapes against torch.autograd (tanh and softplus as
issue 3 asks, and every new activation), and the activation names layers use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import trainctl as tc
from trainctl.nn.activations import activations, check_activation


def f64(values, dtype="float64"):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype=dtype)


def grad(fn, x):
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y, tape.gradient(y, x)


# ---- numerics at extreme inputs -----------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_log_sigmoid_is_exact_at_plus_minus_1000(dtype):
    y, dx = grad(tc.ops.log_sigmoid, f64([-1000.0, 1000.0], dtype))
    assert y.numpy()[0] == -1000.0
    assert y.numpy()[1] == 0.0
    np.testing.assert_array_equal(dx.numpy(), [1.0, 0.0])  # σ(-x): finite at both ends


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_elu_gelu_silu_stay_finite_at_plus_minus_1000(dtype):
    x = f64([-1000.0, 1000.0], dtype)
    for fn, value, slope in [(tc.ops.elu, [-1.0, 1000.0], [0.0, 1.0]),
                             (tc.ops.gelu, [0.0, 1000.0], [0.0, 1.0]),
                             (lambda t: tc.ops.gelu(t, approximate=True),
                              [0.0, 1000.0], [0.0, 1.0]),
                             (tc.ops.silu, [0.0, 1000.0], [0.0, 1.0])]:
        y, dx = grad(fn, x)
        np.testing.assert_array_equal(np.abs(y.numpy()), np.abs(value))
        np.testing.assert_array_equal(dx.numpy(), slope)


def test_elu_is_exact_near_zero():
    # expm1, not exp(x) - 1: alpha (e^x - 1) at x = -1e-10 keeps full relative precision
    y = tc.ops.elu(f64([-1e-10]))
    np.testing.assert_allclose(y.numpy(), np.expm1([-1e-10]), rtol=1e-15)


def test_torch_hardsigmoid_equals_relu6_x_plus_3_over_6():
    x = torch.linspace(-5.0, 5.0, 101, dtype=torch.float64)
    torch.testing.assert_close(TF.hardsigmoid(x), TF.relu6(x + 3) / 6, rtol=0, atol=0)
    np.testing.assert_array_equal(tc.ops.hard_sigmoid(f64(x.numpy())).numpy(),
                                  (TF.relu6(x + 3) / 6).numpy())


def test_gelu_matches_torch_in_float32():
    x = np.linspace(-6.0, 6.0, 49)
    for approx, mode in [(False, "none"), (True, "tanh")]:
        y = tc.ops.gelu(f64(x, "float32"), approximate=approx)
        ref = TF.gelu(torch.tensor(x, dtype=torch.float32), approximate=mode)
        np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-5, atol=1e-6)


# ---- gradients at kinks (docs/autodiff.md) ----------------------------------------------
@pytest.mark.parametrize("name, fn, x, expected", [
    ("leaky_relu-at-0", tc.ops.leaky_relu, 0.0, 0.2),
    ("leaky_relu-alpha0.01-at-0", lambda x: tc.ops.leaky_relu(x, alpha=0.01), 0.0, 0.01),
    ("elu-at-0", tc.ops.elu, 0.0, 1.0),
    ("elu-alpha0.5-at-0", lambda x: tc.ops.elu(x, alpha=0.5), 0.0, 0.5),
    ("hard_sigmoid-at-3", tc.ops.hard_sigmoid, 3.0, 0.0),
    ("hard_sigmoid-at-minus-3", tc.ops.hard_sigmoid, -3.0, 0.0),
    ("hard_sigmoid-at-0", tc.ops.hard_sigmoid, 0.0, 1 / 6),
    ("softsign-at-0", tc.ops.softsign, 0.0, 1.0),
])
def test_gradient_at_kinks(name, fn, x, expected):
    _, dx = grad(fn, f64(x))
    assert dx.item() == expected


def test_hard_sigmoid_values_at_and_beyond_kinks():
    y = tc.ops.hard_sigmoid(f64([-4.0, -3.0, 0.0, 3.0, 4.0]))
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 0.5, 1.0, 1.0])


# ---- second derivatives through nested tapes against torch.autograd --------------------
X = [-30.0, -4.0, -1.3, -0.4, 0.2, 0.9, 1.7, 4.0, 30.0]
SECOND = {
    "tanh": (tc.ops.tanh, torch.tanh),
    "softplus": (tc.ops.softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x))),
    "erf": (tc.ops.erf, torch.erf),
    "gelu": (tc.ops.gelu, TF.gelu),
    "gelu-tanh": (lambda x: tc.ops.gelu(x, approximate=True),
                  lambda x: TF.gelu(x, approximate="tanh")),
    "silu": (tc.ops.silu, TF.silu),
    "elu": (lambda x: tc.ops.elu(x, alpha=0.7), lambda x: TF.elu(x, alpha=0.7)),
    "leaky_relu": (tc.ops.leaky_relu, lambda x: TF.leaky_relu(x, 0.2)),
    "softsign": (tc.ops.softsign, TF.softsign),
    "hard_sigmoid": (tc.ops.hard_sigmoid, lambda x: TF.relu6(x + 3) / 6),
    "log_sigmoid": (tc.ops.log_sigmoid, TF.logsigmoid),
}


@pytest.mark.parametrize("name", list(SECOND))
def test_second_derivative_matches_torch(name):
    fn, ref = SECOND[name]
    x = f64(X)
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
        d1 = inner.gradient(y, x)
    d2 = outer.gradient(d1, x, unconnected_gradients="zero")

    tx = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    (t1,) = torch.autograd.grad(ref(tx).sum(), tx, create_graph=True)
    t2 = torch.autograd.grad(t1.sum(), tx, allow_unused=True)[0]
    t2 = torch.zeros_like(tx) if t2 is None else t2
    np.testing.assert_allclose(d1.numpy(), t1.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d2.numpy(), t2.numpy(), rtol=1e-10, atol=1e-12)


def test_second_derivative_closed_forms_of_softplus_and_log_sigmoid():
    # softplus'' = σ(x) σ(-x) = -log_sigmoid''
    xv = np.array(X)
    sig = 1 / (1 + np.exp(-xv))
    for fn, sign in [(tc.ops.softplus, 1.0), (tc.ops.log_sigmoid, -1.0)]:
        x = f64(xv)
        with tc.GradientTape() as outer:
            outer.watch(x)
            with tc.GradientTape() as inner:
                inner.watch(x)
                y = fn(x)
            d1 = inner.gradient(y, x)
        d2 = outer.gradient(d1, x)
        np.testing.assert_allclose(d2.numpy(), sign * sig * (1 - sig), rtol=1e-12, atol=1e-15)


# ---- activation names for layers ----------------------------------------------------------
NAMED = {
    "gelu": TF.gelu, "silu": TF.silu, "elu": TF.elu,
    "leaky_relu": lambda x: TF.leaky_relu(x, negative_slope=0.2), "softsign": TF.softsign,
    "hard_sigmoid": lambda x: TF.relu6(x + 3) / 6, "log_sigmoid": TF.logsigmoid,
}


@pytest.mark.parametrize("name", list(NAMED))
def test_activation_names_for_layers(name):
    assert check_activation(name) == name
    xv = np.linspace(-4.0, 4.0, 17)
    y = activations.get(name)(f64(xv))
    np.testing.assert_allclose(y.numpy(), NAMED[name](torch.from_numpy(xv)).numpy(),
                               rtol=1e-12, atol=1e-12)


def test_misspelled_activation_suggests_the_name():
    with pytest.raises(ValueError, match="did you mean 'leaky_relu'"):
        check_activation("leaky_rleu")
