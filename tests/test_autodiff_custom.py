"""tc.custom_gradient (TensorFlow's semantics) and tc.gradcheck.

Oracles: closed forms (log1p(e^x) and its derivatives, clipping) and float64 finite
differences; gradcheck must pass on correct ops and fail on a wrong custom gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit

import trainctl as tc
from trainctl.errors import ShapeError

X = np.array([-1000.0, -30.0, -2.0, -0.5, 0.0, 0.7, 3.0, 30.0, 100.0, 1000.0])


def f64(values):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype="float64")


@tc.custom_gradient
def clip_gradient(x):
    """Identity forward; the backward clips the incoming gradient to [-1, 1]."""
    def grad(upstream):
        return tc.ops.minimum(tc.ops.maximum(upstream, -1.0), 1.0)
    return x, grad


@tc.custom_gradient
def log1pexp(x):
    """log(1 + e^x), stable for any x; the gradient 1 / (1 + e^-x) is 1 (not NaN) at x = 1000."""
    e_neg = tc.ops.exp(-x)
    def grad(upstream):
        return upstream / (1.0 + e_neg)
    return tc.ops.maximum(x, 0.0) + tc.ops.log(1.0 + tc.ops.exp(-tc.ops.abs(x))), grad


def _recorded(out):
    names, stack, seen = [], [out], set()
    while stack:
        t = stack.pop()
        if t._node is None or id(t) in seen:
            continue
        seen.add(id(t))
        names.append(t._node.op.name)
        stack.extend(t._node.inputs)
    return names


# ---- custom_gradient ------------------------------------------------------------------
def test_clipped_gradient_identity():
    w = np.array([[-3.0, -0.5], [0.25, 7.0]])
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = clip_gradient(x)
        loss = tc.ops.sum(y * f64(w))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), np.clip(w, -1.0, 1.0))


def test_log1pexp_values_and_gradients_match_closed_forms():
    x = f64(X)
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp(x)
    g = tape.gradient(y, x)
    np.testing.assert_allclose(y.numpy(), np.logaddexp(0.0, X), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(g.numpy(), expit(X), rtol=4e-15, atol=1e-300)
    assert g.numpy()[-1] == 1.0 and np.isfinite(g.numpy()).all()
    # the same function differentiated naively is NaN at x = 1000: the rule is what fixes it
    with tc.GradientTape() as tape:
        tape.watch(x)
        naive = tc.ops.log(1.0 + tc.ops.exp(x))
    assert np.isnan(tape.gradient(naive, x).numpy()[-1])


def test_log1pexp_second_derivative_through_the_custom_rule():
    xv = X[2:-3]  # e^-x finite: the rule's own derivative e^-x / (1 + e^-x)^2
    x = f64(xv)
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = log1pexp(x)
        g = inner.gradient(y, x)
    s = expit(xv)
    np.testing.assert_allclose(outer.gradient(g, x).numpy(), s * (1 - s), rtol=1e-12, atol=1e-300)


def test_one_node_per_call():
    x = f64([0.5, 2.0])
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = log1pexp(x)
        z = clip_gradient(y)
    assert _recorded(y) == ["custom_gradient"]
    assert y._node.inputs == (x,)
    assert _recorded(z) == ["custom_gradient", "custom_gradient"]
    assert z._node.attrs["fn_name"] == "clip_gradient"
    assert log1pexp.__name__ == "log1pexp" and "stable" in log1pexp.__doc__
    assert log1pexp(x)._node is None  # no tape watches x now: nothing recorded
    np.testing.assert_allclose(tape.gradient(z, x).numpy(), expit([0.5, 2.0]), rtol=4e-15)


def test_several_arguments_non_tensor_arguments_and_keywords():
    @tc.custom_gradient
    def scaled_product(a, b, scale, power=1):
        def grad(upstream):
            return upstream * b * scale, upstream * a * scale, None
        return a * b * scale * power, grad

    a, b = f64([1.0, 2.0]), f64([3.0, -4.0])
    with tc.GradientTape() as tape:
        tape.watch([a, b])
        y = tc.ops.sum(scaled_product(a, b, 2.0, power=1))
    ga, gb = tape.gradient(y, [a, b])
    np.testing.assert_array_equal(ga.numpy(), [6.0, -8.0])
    np.testing.assert_array_equal(gb.numpy(), [2.0, 4.0])


def test_variables_form():
    w = tc.Variable([2.0, 3.0], dtype="float64", name="w")

    @tc.custom_gradient
    def scale_by_w(x):
        def grad(upstream, variables=None):
            assert variables == [w]
            return upstream * w, [upstream * x * 10.0]   # deliberately 10x for w
        return x * w, grad

    x = f64([1.0, -1.0])
    with tc.GradientTape() as tape:
        tape.watch(x)
        c = scale_by_w(x)
        y = tc.ops.sum(c)
    assert [t is w for t in c._node.inputs] == [False, True]
    gx, gw = tape.gradient(y, [x, w])
    np.testing.assert_array_equal(gx.numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(gw.numpy(), [10.0, -10.0])

    @tc.custom_gradient
    def no_variables_kw(x):
        return x * w, lambda upstream: upstream * w
    with pytest.raises(TypeError, match=r"reads Variables \['w'\], so its grad_fn must accept "
                                        r"the keyword argument 'variables'"):
        no_variables_kw(x)


def test_custom_gradient_errors():
    @tc.custom_gradient
    def too_many(x):
        return x * 2.0, lambda g: (g, g)

    @tc.custom_gradient
    def wrong_shape(x):
        return x * 2.0, lambda g: tc.ops.sum(g)

    @tc.custom_gradient
    def no_grad_fn(x):
        return x * 2.0

    x = f64([1.0, 2.0])
    for fn, err, msg in [
        (too_many, ValueError, r"grad_fn of too_many returned 2 gradient\(s\) for 1 argument"),
        (wrong_shape, ShapeError, r"grad_fn of wrong_shape returned a gradient of shape \[\] "
                                  r"for argument 0 of shape \[2\]"),
    ]:
        with tc.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        with pytest.raises(err, match=msg):
            tape.gradient(y, x)
    with pytest.raises(TypeError, match="no_grad_fn must return \\(output, grad_fn\\)"):
        no_grad_fn(x)


def test_numbers_as_gradients_are_broadcast():
    @tc.custom_gradient
    def constant_slope(x):
        return x * 1.0, lambda g: 0.5

    x = f64([[1.0, 2.0], [3.0, 4.0]])
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = constant_slope(x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), np.full((2, 2), 0.5))


# ---- gradcheck ------------------------------------------------------------------------
def test_gradcheck_passes_on_correct_ops():
    rng = np.random.default_rng(0)
    a, w, b = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=2)
    assert tc.gradcheck(lambda x, w, b: tc.ops.softmax(tc.ops.tanh(x @ w + b)), [a, w, b]) is True
    assert tc.gradcheck(log1pexp, [X[2:-2]])
    # several outputs, an integer input passed through, a float32 input checked in float64
    idx = tc.tensor([[2], [0], [1]])
    assert tc.gradcheck(lambda x, i: (tc.ops.take_along_axis(x, i, axis=1), tc.ops.exp(x)),
                        [tc.tensor(a, dtype="float32"), idx])


def test_gradcheck_fails_on_a_wrong_custom_gradient():
    @tc.custom_gradient
    def square_wrong(x):
        def grad(upstream):
            return upstream * 3.0 * x     # should be 2 x
        return x * x, grad

    y = np.array([[0.5, -1.0, 2.0]])
    with pytest.raises(tc.GradcheckError) as info:
        tc.gradcheck(lambda a, b: a + square_wrong(b), [np.zeros((1, 3)), y])
    msg = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert msg.startswith("gradcheck: input 1 (shape [1,3]): d output[0,2] / d input1[0,2] is 6 "
                          "by the tape but 4")
    assert "3 of 9 Jacobian entries differ" in msg
    assert tc.gradcheck(lambda b: square_wrong(b), [y], raise_exception=False) is False


def test_gradcheck_rejects_bad_arguments():
    with pytest.raises(ValueError, match="no floating input"):
        tc.gradcheck(lambda i: i * 2, [tc.tensor([1, 2])])
    with pytest.raises(ValueError, match="fn must return floating Tensors"):
        tc.gradcheck(lambda x: tc.ops.argmax(x), [np.ones((2, 2))])


def test_gradcheck_agrees_with_torch_gradcheck_on_a_wrong_rule():
    """Oracle: torch.autograd.gradcheck also rejects the same wrong rule written in torch."""
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3.0 * x

    x = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False) is False

    @tc.custom_gradient
    def wrong(x):
        return x * x, lambda g: g * 3.0 * x
    assert tc.gradcheck(wrong, [x.detach().numpy()], raise_exception=False) is False
