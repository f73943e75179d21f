"""Golden autodiff cases A1-A3 (values copied from the project's cases/autodiff.md), plus
numerics of logsumexp, sigmoid cross-entropy and softplus at extreme logits.

Tolerances (from the case file): float64 1e-12 absolute and relative; float32 1e-6
absolute, 1e-5 relative. Max pooling (A1, last bullet) and A4/A5 concern ops not written yet.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import trainctl as tc

LN2 = 0.6931471805599453
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
DTYPES = ["float64", "float32"]


def grad_of(fn, *values, dtype="float64"):
    """(fn(*xs), [d sum(fn(*xs)) / d x]) for constants xs made from ``values``."""
    xs = [tc.tensor(v, dtype=dtype) for v in values]
    with tc.GradientTape() as tape:
        tape.watch(xs)
        y = fn(*xs)
    return y, tape.gradient(y, xs)


def close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual.numpy(), dtype=np.float64), expected, **TOL[dtype])


# ---- A1: ties in max/min --------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_a1_max_reduction_splits_gradient_among_tied_maxima(dtype):
    y, (dx,) = grad_of(tc.ops.max, [0.6, 0.6, 0.3], dtype=dtype)
    close(y, 0.6, dtype)
    close(dx, [0.5, 0.5, 0.0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a1_min_reduction_splits_gradient_among_tied_minima(dtype):
    _, (dx,) = grad_of(tc.ops.min, [0.3, 0.6, 0.3], dtype=dtype)
    close(dx, [0.5, 0.0, 0.5], dtype)


@pytest.mark.parametrize("keepdims", [False, True])
def test_a1_max_over_axis_with_ties(keepdims):
    y, (dx,) = grad_of(lambda x: tc.ops.sum(tc.ops.max(x, axis=1, keepdims=keepdims)),
                       [[1.0, 5.0], [5.0, 5.0]])
    assert y.item() == 10.0
    close(dx, [[0.0, 1.0], [0.5, 0.5]], "float64")


def test_a1_tied_group_gradient_sums_to_upstream_gradient():
    # all-axes max with three tied maxima, upstream gradient 3: each gets 1, the group sums to 3
    y, (dx,) = grad_of(lambda x: tc.ops.max(x) * 3.0, [[1.0, 5.0], [5.0, 5.0]])
    close(dx, [[0.0, 1.0], [1.0, 1.0]], "float64")
    # min over axis 0 with a tie in column 1 only, upstream gradient w = [2, 4]
    w = tc.tensor([2.0, 4.0], dtype="float64")
    _, (dx,) = grad_of(lambda x: tc.ops.sum(tc.ops.min(x, axis=0) * w), [[1.0, 2.0], [3.0, 2.0]])
    close(dx, [[2.0, 2.0], [0.0, 2.0]], "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_a1_elementwise_tie_gives_each_side_half(op, dtype):
    y, (da, db) = grad_of(getattr(tc.ops, op), 2.0, 2.0, dtype=dtype)
    assert y.item() == 2.0
    assert (da.item(), db.item()) == (0.5, 0.5)


def test_a1_elementwise_ties_with_broadcasting():
    # maximum(a, s) with s a 0-d tensor tied with two of a's elements
    y, (da, ds) = grad_of(tc.ops.maximum, [1.0, 2.0, 3.0, 2.0], 2.0)
    close(y, [2.0, 2.0, 3.0, 2.0], "float64")
    close(da, [0.0, 0.5, 1.0, 0.5], "float64")
    assert ds.shape == ()
    close(ds, 2.0, "float64")  # 1 (a=1 loses) + 0.5 + 0 + 0.5


# ---- A2: broadcast operands get gradients of their own shape --------------------------
def test_a2_broadcast_gradients():
    A = tc.Variable([[1, 2, 3], [4, 5, 6]], dtype="float64")
    b = tc.Variable([10, 20, 30], dtype="float64")
    s = tc.Variable(2.0, dtype="float64")
    c = tc.Variable([[1], [2]], dtype="float64")
    with tc.GradientTape() as tape:
        y = (A + b) * s + c
        L = tc.ops.sum(y ** 2)
    dA, db, ds, dc = tape.gradient(L, [A, b, s, c])
    assert L.item() == 16123.0
    assert (dA.shape, db.shape, ds.shape, dc.shape) == ((2, 3), (3,), (), (2, 1))
    np.testing.assert_array_equal(dA.numpy(), [[92, 180, 268], [120, 208, 296]])
    np.testing.assert_array_equal(db.numpy(), [212, 388, 564])
    assert ds.item() == 15676.0
    np.testing.assert_array_equal(dc.numpy(), [[270], [312]])
    assert all(g.dtype == tc.tensor(0.0, dtype="float64").dtype for g in (dA, db, ds, dc))


def test_a2_same_values_through_backward():
    A = tc.Variable([[1, 2, 3], [4, 5, 6]], dtype="float64")
    b = tc.Variable([10, 20, 30], dtype="float64")
    s = tc.Variable(2.0, dtype="float64")
    c = tc.Variable([[1], [2]], dtype="float64")
    tc.ops.sum(((A + b) * s + c) ** 2).backward()
    np.testing.assert_array_equal(A.grad.numpy(), [[92, 180, 268], [120, 208, 296]])
    np.testing.assert_array_equal(b.grad.numpy(), [212, 388, 564])
    assert s.grad.shape == () and s.grad.item() == 15676.0
    np.testing.assert_array_equal(c.grad.numpy(), [[270], [312]])


def test_a2_prepended_axis():
    # x (3,) + y (4,1,3) -> (4,1,3); L = sum(z^2): dx = 2 sum_{i,j} z, dy = 2 z
    xv = np.array([1.0, -2.0, 0.5])
    yv = np.arange(12, dtype=np.float64).reshape(4, 1, 3) / 4
    z, (dx, dy) = grad_of(lambda x, y: tc.ops.sum((x + y) ** 2), xv, yv)
    zv = xv + yv
    assert dx.shape == (3,) and dy.shape == (4, 1, 3)
    close(z, np.sum(zv ** 2), "float64")
    close(dx, 2 * zv.sum(axis=(0, 1)), "float64")
    close(dy, 2 * zv, "float64")


def test_a2_prepended_and_size1_axes_together():
    # y (4,1,3) * u (2,3) -> (4,2,3): u gets the sum over the prepended axis, y over axis 1
    yv = np.arange(12, dtype=np.float64).reshape(4, 1, 3)
    uv = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    _, (dy, du) = grad_of(lambda y, u: tc.ops.sum(y * u), yv, uv)
    assert dy.shape == (4, 1, 3) and du.shape == (2, 3)
    close(dy, np.broadcast_to(uv.sum(axis=0), (4, 1, 3)), "float64")
    close(du, np.broadcast_to(yv.sum(axis=0), (2, 3)), "float64")


# ---- A3: softmax cross-entropy with huge logits --------------------------------------
def softmax_cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label]."""
    picked = tc.ops.take_along_axis(tc.ops.log_softmax(logits, axis=-1),
                                    tc.ops.reshape(labels, (-1, 1)), axis=1)
    return tc.ops.mean(-picked)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a3_equal_huge_logits_give_ln2(dtype):
    loss, (dz,) = grad_of(lambda z: softmax_cross_entropy(z, tc.tensor([1])), [[1e8, 1e8]],
                          dtype=dtype)
    assert np.isfinite(loss.item())
    close(loss, LN2, dtype)
    close(dz, [[0.5, -0.5]], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a3_wrong_class_by_1000(dtype):
    loss, (dz,) = grad_of(lambda z: softmax_cross_entropy(z, tc.tensor([1])), [[1000.0, 0.0]],
                          dtype=dtype)
    assert loss.item() == 1000.0
    close(dz, [[1.0, -1.0]], dtype)


def test_a3_log_softmax_float32_is_finite_and_exact():
    y, (dz,) = grad_of(tc.ops.log_softmax, [-1000.0, 0.0, 1000.0], dtype="float32")
    assert np.all(np.isfinite(y.numpy()))
    np.testing.assert_array_equal(y.numpy(), [-2000.0, -1000.0, 0.0])
    close(dz, [1.0, 1.0, -2.0], "float32")  # d sum(log_softmax)/dz = 1 - 3 softmax(z)


def test_a3_softmax_of_huge_logits_is_finite():
    y = tc.ops.softmax(tc.tensor([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 1.0])


# ---- logsumexp, sigmoid cross-entropy, softplus at extreme values ---------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("values, value, grad", [
    ([1000.0, 1000.0], 1000.0 + LN2, [0.5, 0.5]),
    ([-1000.0, -1000.0], -1000.0 + LN2, [0.5, 0.5]),
    ([1000.0, -1000.0], 1000.0, [1.0, 0.0]),
    ([-1000.0, 0.0, -1000.0], 0.0, [0.0, 1.0, 0.0]),
])
def test_logsumexp_of_plus_minus_1000(values, value, grad, dtype):
    y, (dx,) = grad_of(tc.ops.logsumexp, values, dtype=dtype)
    assert np.isfinite(y.item())
    close(y, value, dtype)
    close(dx, grad, dtype)


def test_logsumexp_axis_keepdims_huge():
    y, (dx,) = grad_of(lambda x: tc.ops.sum(tc.ops.logsumexp(x, axis=1, keepdims=True)),
                       [[1000.0, 1000.0], [-1000.0, 1000.0]])
    close(y, 2000.0 + LN2, "float64")
    close(dx, [[0.5, 0.5], [0.0, 1.0]], "float64")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_cross_entropy_at_plus_minus_1000_is_exact(dtype):
    logits = [1000.0, -1000.0, 1000.0, -1000.0]
    labels = [1.0, 0.0, 0.0, 1.0]
    z = tc.tensor(labels, dtype=dtype)
    loss, (dx,) = grad_of(lambda x: tc.ops.sigmoid_cross_entropy_with_logits(x, z), logits,
                          dtype=dtype)
    np.testing.assert_array_equal(loss.numpy(), [0.0, 0.0, 1000.0, 1000.0])
    np.testing.assert_array_equal(dx.numpy(), [0.0, 0.0, 1.0, -1.0])  # sigmoid(x) - z


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_cross_entropy_at_zero_logit(dtype):
    z = tc.tensor([0.0, 1.0, 0.25], dtype=dtype)
    loss, (dx,) = grad_of(lambda x: tc.ops.sigmoid_cross_entropy_with_logits(x, z),
                          [0.0, 0.0, 0.0], dtype=dtype)
    close(loss, [LN2, LN2, LN2], dtype)
    np.testing.assert_array_equal(dx.numpy(), [0.5, -0.5, 0.25])  # exactly 0.5 - z


def test_sigmoid_cross_entropy_gradient_wrt_labels():
    loss, (dx, dz) = grad_of(tc.ops.sigmoid_cross_entropy_with_logits,
                             [2.0, -3.0], [0.25, 1.0])
    sig = [1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(3.0))]
    close(loss, [-0.25 * math.log(sig[0]) - 0.75 * math.log(1 - sig[0]), -math.log(sig[1])],
          "float64")
    close(dx, [sig[0] - 0.25, sig[1] - 1.0], "float64")
    close(dz, [-2.0, 3.0], "float64")


def test_softplus_is_exact_for_large_and_small_inputs_in_float64():
    xs = [-1000.0, -40.0, -20.5, 0.0, 20.5, 25.0, 36.0, 40.0, 1000.0]
    expected = [max(x, 0.0) + math.log1p(math.exp(-abs(x))) for x in xs]
    y, (dx,) = grad_of(tc.ops.softplus, xs)
    close(y, expected, "float64")
    close(dx, [0.5 * (1 + math.tanh(x / 2)) for x in xs], "float64")  # sigmoid
