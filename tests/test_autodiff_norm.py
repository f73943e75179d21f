"""Normalisation ops: case A4 (values copied from the project's cases/autodiff.md),
closed forms of batch_norm and layer_norm, errors, and second order against torch.autograd.

Tolerances (from the case file): float64 1e-12 absolute and relative; float32 1e-6
absolute, 1e-5 relative.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import trainctl as tc
from trainctl.errors import DTypeError, ShapeError

TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
X4 = [1.0, 2.0, 3.0, 4.0]


def grad_of(fn, *values, dtype="float64"):
    """(fn(*xs), [d sum(fn(*xs)) / d x]) for constants xs made from ``values``."""
    xs = [tc.tensor(v, dtype=dtype) for v in values]
    with tc.GradientTape() as tape:
        tape.watch(xs)
        y = fn(*xs)
    return y, tape.gradient(y, xs)


def close(actual, expected, dtype="float64"):
    np.testing.assert_allclose(np.asarray(actual.numpy(), dtype=np.float64), expected, **TOL[dtype])


# ---- A4: variance and standard deviation ---------------------------------------------
A4 = [
    ("sample-variance", tc.ops.variance, 1, 1.6666666666666667, [-1.0, -1 / 3, 1 / 3, 1.0]),
    ("population-variance", tc.ops.variance, 0, 1.25, [-0.75, -0.25, 0.25, 0.75]),
    ("sample-std", tc.ops.std, 1, 1.2909944487358056,
     [-0.38729833462074165, -0.12909944487358055, 0.12909944487358055, 0.38729833462074165]),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, fn, ddof, value, grad", A4, ids=[c[0] for c in A4])
def test_a4_variance_and_std_of_1_2_3_4(name, fn, ddof, value, grad, dtype):
    y, (dx,) = grad_of(lambda x: fn(x, ddof=ddof), X4, dtype=dtype)
    assert y.shape == () and y.dtype == getattr(torch, dtype)
    close(y, value, dtype)
    close(dx, grad, dtype)


def test_a4_population_std_closed_form():
    # sqrt(1.25), gradient (x - mean) / (N std)
    y, (dx,) = grad_of(tc.ops.std, X4)
    s = math.sqrt(1.25)
    close(y, s)
    close(dx, [(v - 2.5) / (4 * s) for v in X4])


@pytest.mark.parametrize("fn", [tc.ops.variance, tc.ops.std], ids=["variance", "std"])
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a4_constant_input_has_zero_finite_gradient(fn, ddof, dtype):
    y, (dx,) = grad_of(lambda x: fn(x, ddof=ddof), [2.0, 2.0], dtype=dtype)
    assert y.item() == 0.0
    np.testing.assert_array_equal(dx.numpy(), [0.0, 0.0])  # finite: NaN would not equal 0


def test_a4_std_second_order_on_constant_input_is_finite():
    x = tc.tensor([2.0, 2.0, 2.0], dtype="float64")
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = tc.ops.std(x)
        g = inner.gradient(y, x)
    h = outer.gradient(g, x, unconnected_gradients="zero")
    np.testing.assert_array_equal(g.numpy(), np.zeros(3))
    np.testing.assert_array_equal(h.numpy(), np.zeros(3))


def test_a4_std_over_axis_with_one_constant_group():
    # row 0 constant (gradient 0), row 1 = [1, 3]: std 1, gradient (x - mean) / (N std)
    y, (dx,) = grad_of(lambda x: tc.ops.std(x, axis=1), [[5.0, 5.0], [1.0, 3.0]])
    close(y, [0.0, 1.0])
    close(dx, [[0.0, 0.0], [-0.5, 0.5]])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a4_layer_norm_over_a_constant_row_has_finite_gradients(dtype):
    # x̂ = 0 so y = beta; dx = r (ĝ - mean ĝ) with ĝ = w gamma and r = 1/sqrt(eps);
    # dgamma = Σ w x̂ = 0; dbeta = w
    w = np.array([0.3, -1.2, 0.5, 2.0])
    gamma = np.array([1.5, -0.5, 2.0, 1.0])
    x = tc.tensor([[2.0, 2.0, 2.0, 2.0]], dtype=dtype)
    g_, b_ = tc.tensor(gamma, dtype=dtype), tc.tensor(np.ones(4), dtype=dtype)
    with tc.GradientTape() as tape:
        tape.watch([x, g_, b_])
        y = tc.ops.layer_norm(x, g_, b_)
        loss = tc.ops.sum(y * tc.tensor(w, dtype=dtype))
    dx, dg, db = tape.gradient(loss, [x, g_, b_])
    close(y, [[1.0, 1.0, 1.0, 1.0]], dtype)
    gh = w * gamma
    close(dx, [(gh - gh.mean()) / math.sqrt(1e-3)], dtype)
    close(dg, np.zeros(4), dtype)
    close(db, w, dtype)


# ---- batch_norm and layer_norm: closed forms --------------------------------------------
def test_batch_norm_closed_form_two_samples():
    # per channel: mean 2, var 1 (biased) for [1, 3]; mean 0, var 4 for [-2, 2]
    y = tc.ops.batch_norm(tc.tensor([[1.0, -2.0], [3.0, 2.0]], dtype="float64"),
                          tc.tensor([2.0, 1.0], dtype="float64"),
                          tc.tensor([0.5, 0.0], dtype="float64"), epsilon=1e-3)
    a, b = 1 / math.sqrt(1.001), 2 / math.sqrt(4.001)
    close(y, [[0.5 - 2 * a, -b], [0.5 + 2 * a, b]])


def test_batch_norm_axis1_is_per_channel_over_batch_and_space():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (4, 3, 5, 5))
    y = tc.ops.batch_norm(tc.tensor(x, dtype="float64"), axis=1, epsilon=0.0).numpy()
    close(tc.tensor(y.mean(axis=(0, 2, 3))), np.zeros(3))
    close(tc.tensor(y.var(axis=(0, 2, 3))), np.ones(3))


def test_layer_norm_default_axis_is_last_and_matches_torch():
    rng = np.random.default_rng(1)
    x, g, b = rng.normal(size=(3, 6)), rng.normal(size=6), rng.normal(size=6)
    y = tc.ops.layer_norm(*(tc.tensor(v, dtype="float64") for v in (x, g, b)))
    ref = TF.layer_norm(*(torch.from_numpy(v) for v in (x,)), (6,), torch.from_numpy(g),
                        torch.from_numpy(b), eps=1e-3)
    close(y, ref.numpy())


def test_moments_are_mean_and_population_variance():
    m, v = tc.ops.moments(tc.tensor([[1.0, 2.0], [3.0, 6.0]], dtype="float64"), axis=0)
    close(m, [2.0, 4.0])
    close(v, [1.0, 4.0])


def test_rsqrt_value_and_gradient():
    y, (dx,) = grad_of(tc.ops.rsqrt, [4.0, 0.25])
    close(y, [0.5, 2.0])
    close(dx, [-0.5 * 4.0 ** -1.5, -0.5 * 0.25 ** -1.5])


# ---- errors ---------------------------------------------------------------------------
def f64(shape):
    return tc.tensor(np.ones(shape), dtype="float64")


@pytest.mark.parametrize("call, kind, message", [
    (lambda: tc.ops.batch_norm(f64((2, 3, 8, 8)), f64(4), f64(3), axis=1), ShapeError,
     "batch_norm: gamma [4] must have shape [3] (channel axis 1 of x [2,3,8,8])"),
    (lambda: tc.ops.batch_norm(f64((2, 3)), f64(3), f64(2)), ShapeError,
     "batch_norm: beta [2] must have shape [3] (channel axis -1 of x [2,3])"),
    (lambda: tc.ops.batch_norm(f64(5)), ShapeError,
     "batch_norm: x [5] needs a batch axis and a channel axis (rank >= 2)"),
    (lambda: tc.ops.batch_norm(f64((2, 3)), axis=2), ShapeError,
     "batch_norm: axis 2 is out of range for x [2,3]"),
    (lambda: tc.ops.batch_norm(tc.tensor([[1, 2]])), DTypeError,
     "batch_norm: needs a floating tensor, got int64 [1,2]"),
    (lambda: tc.ops.layer_norm(f64((2, 3, 4)), f64((4, 3)), axes=(1, 2)), ShapeError,
     "layer_norm: gamma [4,3] must have shape [3,4] (axes [1, 2] of x [2,3,4])"),
    (lambda: tc.ops.layer_norm(f64((2, 3)), axes=2), ShapeError,
     "layer_norm: axis 2 is out of range for a tensor of rank 2"),
    (lambda: tc.ops.variance(f64(1), ddof=1), ShapeError,
     "variance: ddof=1 needs more than 1 element(s) per group; reducing axes [0] of [1] leaves 1"),
    (lambda: tc.ops.std(f64((3, 1)), axis=1, ddof=1), ShapeError,
     "std: ddof=1 needs more than 1 element(s) per group; reducing axes [1] of [3,1] leaves 1"),
    (lambda: tc.ops.std(tc.tensor([1, 2, 3])), DTypeError,
     "std: needs a floating tensor, got int64 [3]"),
    (lambda: tc.ops.variance(f64(3), ddof=-1), TypeError,
     "variance: ddof must be a non-negative int"),
])
def test_errors_name_the_op_and_shapes(call, kind, message):
    with pytest.raises(kind) as info:
        call()
    assert message in str(info.value)


# ---- second order: Hessian-vector products against torch.autograd -------------------------
SECOND = [
    ("variance-ddof1", lambda x: tc.ops.variance(x, axis=1, ddof=1) ** 2,
     lambda x: x.var(1, correction=1) ** 2, [(3, 4)]),
    ("std-axis0", lambda x: tc.ops.std(x, axis=0) ** 2 + tc.ops.std(x, axis=0),
     lambda x: x.std(0, correction=0) ** 2 + x.std(0, correction=0), [(4, 3)]),
    ("rsqrt", tc.ops.rsqrt, torch.rsqrt, [(5,)]),
    ("batch_norm", lambda x, g, b: tc.ops.batch_norm(x, g, b, axis=1) ** 2,
     lambda x, g, b: TF.batch_norm(x, None, None, g, b, training=True, eps=1e-3) ** 2,
     [(3, 2, 2), (2,), (2,)]),
    ("layer_norm", lambda x, g, b: tc.ops.layer_norm(x, g, b, axes=(1, 2)) ** 2,
     lambda x, g, b: TF.layer_norm(x, (2, 3), g, b, eps=1e-3) ** 2, [(2, 2, 3), (2, 3), (2, 3)]),
]


@pytest.mark.parametrize("name, fn, ref, shapes", SECOND, ids=[c[0] for c in SECOND])
def test_hessian_vector_product_matches_torch(name, fn, ref, shapes):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    lo = 0.5 if name == "rsqrt" else -1.5
    xs = [rng.uniform(lo, 1.5, s) for s in shapes]
    vs = [rng.uniform(-1, 1, s) for s in shapes]
    w = rng.uniform(-1, 1, tuple(ref(*map(torch.from_numpy, xs)).shape))

    ts = [tc.tensor(x, dtype="float64") for x in xs]
    with tc.GradientTape() as outer:
        outer.watch(ts)
        with tc.GradientTape() as inner:
            inner.watch(ts)
            loss = tc.ops.sum(fn(*ts) * tc.tensor(w, dtype="float64"))
        gs = inner.gradient(loss, ts)
        s = sum(tc.ops.sum(g * tc.tensor(v, dtype="float64")) for g, v in zip(gs, vs))
    hv = outer.gradient(s, ts, unconnected_gradients="zero")

    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    tgs = torch.autograd.grad((ref(*tt) * torch.from_numpy(w)).sum(), tt, create_graph=True)
    thv = torch.autograd.grad(sum((g * torch.from_numpy(v)).sum() for g, v in zip(tgs, vs)), tt)
    for g, tg, h, th in zip(gs, tgs, hv, thv):
        np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-9, atol=1e-11)
