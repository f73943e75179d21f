"""Gradient checks: one table with a row per registered differentiable op, plus composed ops.

Every row computes L = sum(f(x) * w) for seeded random float64 inputs x and a fixed random
w, and compares dL/dx from our GradientTape with
  (a) central finite differences of our own forward (eps 1e-6, rel. tol 1e-6), and
  (b) torch.autograd on the same computation written in torch (tol 1e-10).
torch.autograd is used only here, as an oracle. The registry test fails when a registered
differentiable op is recorded by no row, so adding an op forces adding a row.
Second-order gradients (nested tapes) are checked against closed forms and torch.
"""

from __future__ import annotations

import importlib
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import trainctl as tc
from trainctl.autodiff.ops import OPS

F64 = torch.float64
EPS = 1e-6


from gradcheck_harness import POS, ROWS, STD, Row, away, distinct, lattice, row, shp, uniform  # noqa: E402,F401

# ---- elementwise: binary, broadcasting ------------------------------------------------
BINARY = {
    "add": (tc.ops.add, torch.add, STD, STD),
    "sub": (tc.ops.sub, torch.sub, STD, STD),
    "mul": (tc.ops.mul, torch.mul, STD, STD),
    "div": (tc.ops.div, torch.div, STD, away(0.5, 2.0)),
    "pow": (tc.ops.pow, torch.pow, POS, uniform(-2.0, 2.0)),
    "maximum": (tc.ops.maximum, torch.maximum, lattice(0.0), lattice(0.2)),
    "minimum": (tc.ops.minimum, torch.minimum, lattice(0.0), lattice(0.2)),
}
BINARY_SHAPES = [((3,), (4, 1, 3)), ((2, 1), (1, 3)), ((), (2, 3)), ((2, 3), ()),
                 ((1,), (1,)), ((2, 3), (2, 3)), ((), ())]
for _name, (_fn, _ref, _sa, _sb) in BINARY.items():
    for _a, _b in BINARY_SHAPES:
        row(f"{_name}-{shp(_a)}-{shp(_b)}", _fn, _ref, (_a, _sa), (_b, _sb))

row("operators-mixed", lambda a, b: (2.0 - a) * b / 3 + a ** 2 - (-b),
    lambda a, b: (2.0 - a) * b / 3 + a ** 2 - (-b), ((2, 3), STD), ((3,), STD))
row("rpow-scalar-base", lambda a: 2.0 ** a, lambda a: 2.0 ** a, ((2, 3), STD))

# ---- elementwise: unary ----------------------------------------------------------------
UNARY = {
    "neg": (tc.ops.neg, torch.neg, STD),
    "exp": (tc.ops.exp, torch.exp, STD),
    "log": (tc.ops.log, torch.log, POS),
    "sqrt": (tc.ops.sqrt, torch.sqrt, POS),
    "abs": (tc.ops.abs, torch.abs, away(0.1, 2.0)),
    "relu": (tc.ops.relu, torch.relu, away(0.1, 2.0)),
    "sigmoid": (tc.ops.sigmoid, torch.sigmoid, uniform(-4.0, 4.0)),
    "tanh": (tc.ops.tanh, torch.tanh, uniform(-2.0, 2.0)),
    "softplus": (tc.ops.softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)),
                 uniform(-4.0, 4.0)),
    "cast": (lambda x: tc.ops.cast(x, dtype="float64"), lambda x: x.to(F64), STD),
}
for _name, (_fn, _ref, _s) in UNARY.items():
    for _shape in [(), (1,), (2, 3), (2, 1, 3)]:
        row(f"{_name}-{shp(_shape)}", _fn, _ref, (_shape, _s))
row("softplus-large", tc.ops.softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    ((5,), uniform(15.0, 40.0)))

# relu's rule: g where y > 0 (y: relu's output, a constant here; its own gradient is zero)
_Y = [[0.5, -0.3, 0.0], [1.2, 0.0, -2.0]]
row("relu_grad-2x3", lambda g: tc.ops.relu_grad(g, tc.tensor(_Y, dtype="float64")),
    lambda g: torch.where(torch.tensor(_Y, dtype=F64) > 0, g, torch.zeros_like(g)),
    ((2, 3), STD))

# ---- where, sigmoid cross-entropy ------------------------------------------------------
_COND = [[True, False, True], [False, False, True]]
row("where-2x3-3", lambda a, b: tc.ops.where(tc.tensor(_COND), a, b),
    lambda a, b: torch.where(torch.tensor(_COND), a, b), ((2, 3), STD), ((3,), STD))
row("where-cond2x1-0d-1x3", lambda a, b: tc.ops.where(tc.tensor([[True], [False]]), a, b),
    lambda a, b: torch.where(torch.tensor([[True], [False]]), a, b), ((), STD), ((1, 3), STD))
for _shape in [(), (2, 3)]:
    row(f"sigmoid_cross_entropy_with_logits-{shp(_shape)}",
        tc.ops.sigmoid_cross_entropy_with_logits,
        lambda x, z: -(z * TF.logsigmoid(x) + (1 - z) * TF.logsigmoid(-x)),
        (_shape, away(0.1, 3.0)), (_shape, uniform(0.0, 1.0)))


# ---- reductions ------------------------------------------------------------------------
def _dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


def _torch_reduce(kind):
    def ref(x, axis, keepdims):
        dims = _dims(axis, x.dim())
        if kind == "sum":
            return torch.sum(x, dim=dims, keepdim=keepdims) if x.dim() else x
        if kind == "logsumexp":
            return torch.logsumexp(x, dim=dims, keepdim=keepdims) if x.dim() else x
        if x.dim() == 0:
            return x
        red = torch.amax if kind == "max" else torch.amin
        return red(x, dim=dims, keepdim=keepdims)
    return ref


REDUCE_CASES = [((2, 3, 4), None, False), ((2, 3, 4), 0, False), ((2, 3, 4), -1, True),
                ((2, 3, 4), (0, 2), False), ((2, 3, 4), (0, 2), True), ((2, 1, 3), 1, False),
                ((4,), 0, False), ((), None, False), ((1,), None, True)]
for _kind in ["sum", "max", "min", "logsumexp"]:
    _op = getattr(tc.ops, _kind)
    for _shape, _axis, _keep in REDUCE_CASES:
        row(f"{_kind}-{shp(_shape)}-axis{_axis}-keep{int(_keep)}",
            lambda x, _op=_op, _axis=_axis, _keep=_keep: _op(x, axis=_axis, keepdims=_keep),
            lambda x, _r=_torch_reduce(_kind), _axis=_axis, _keep=_keep: _r(x, _axis, _keep),
            (_shape, distinct()))
row("method-sum-positional-axis", lambda x: x.sum(1), lambda x: x.sum(1), ((2, 3), STD))
row("method-max-positional-axis", lambda x: x.max(0), lambda x: x.amax(0), ((3, 2), distinct()))

row("sum_to-2x3x4-to-3x1", lambda x: tc.ops.sum_to(x, shape=(3, 1)),
    lambda x: x.sum(0).sum(-1, keepdim=True), ((2, 3, 4), STD))
row("sum_to-4x1x3-to-1x3", lambda x: tc.ops.sum_to(x, (1, 3)),
    lambda x: x.sum(0), ((4, 1, 3), STD))
row("sum_to-same-shape", lambda x: tc.ops.sum_to(x, (2, 3)), lambda x: x, ((2, 3), STD))
row("sum_to-0d", lambda x: tc.ops.sum_to(x, ()), lambda x: x.sum(), ((2, 3), STD))

# ---- movement --------------------------------------------------------------------------
row("broadcast_to-3x1-to-2x3x4", lambda x: tc.ops.broadcast_to(x, shape=(2, 3, 4)),
    lambda x: x.expand(2, 3, 4), ((3, 1), STD))
row("broadcast_to-0d-to-2x2", lambda x: x.broadcast_to((2, 2)),
    lambda x: x.expand(2, 2), ((), STD))
row("reshape-2x3x4-to-4xm1", lambda x: tc.ops.reshape(x, (4, -1)),
    lambda x: x.reshape(4, -1), ((2, 3, 4), STD))
row("reshape-0d-to-1x1", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1), ((), STD))
row("permute-2x3x4", lambda x: tc.ops.permute(x, axes=(2, 0, 1)),
    lambda x: x.permute(2, 0, 1), ((2, 3, 4), STD))
row("permute-negative-axes", lambda x: x.permute(-1, 0, -2),
    lambda x: x.permute(2, 0, 1), ((2, 3, 4), STD))
row("concat-axis1", lambda a, b, c: tc.ops.concat(a, b, c, axis=1),
    lambda a, b, c: torch.cat([a, b, c], dim=1), ((2, 1), STD), ((2, 3), STD), ((2, 2), STD))
row("concat-axis-1-3d", lambda a, b: tc.ops.concat(a, b, axis=-1),
    lambda a, b: torch.cat([a, b], dim=-1), ((2, 1, 2), STD), ((2, 1, 3), STD))
_KEY = (slice(1, None), slice(None, None, 2), None, 0)
row("getitem-slices-steps-none-int", lambda x: tc.ops.getitem(x, key=_KEY),
    lambda x: x[1:, ::2, None, 0], ((3, 5, 2), STD))
row("getitem-operator", lambda x: x[1] + x[..., -1:],
    lambda x: x[1] + x[..., -1:], ((3, 4), STD))
row("getitem_adjoint", lambda g: tc.ops.getitem_adjoint(g, key=(slice(1, 3), 0), shape=(4, 3)),
    lambda g: _torch_place(g, (slice(1, 3), 0), (4, 3)), ((2,), STD))
_IDX = [[2, 0, 2], [1, 1, 3]]
row("take_along_axis-axis1-repeats", lambda x: tc.ops.take_along_axis(x, tc.tensor(_IDX), 1),
    lambda x: torch.take_along_dim(x, torch.tensor(_IDX), 1), ((2, 4), STD))
row("take_along_axis-broadcast-indices", lambda x: tc.ops.take_along_axis(
    x, tc.tensor([[0, 2]]), axis=1), lambda x: torch.take_along_dim(x, torch.tensor([[0, 2]]), 1),
    ((3, 4), STD))
row("take_along_axis-axis0", lambda x: tc.ops.take_along_axis(x, tc.tensor([[1, 0, 1]]), axis=0),
    lambda x: torch.take_along_dim(x, torch.tensor([[1, 0, 1]]), 0), ((2, 3), STD))
row("put_along_axis_add", lambda g: tc.ops.put_along_axis_add(
    g, tc.tensor(_IDX), axis=1, shape=(2, 4)),
    lambda g: torch.zeros(2, 4, dtype=F64).scatter_add(1, torch.tensor(_IDX), g), ((2, 3), STD))


def _torch_place(g, key, shape):
    z = torch.zeros(shape, dtype=g.dtype)
    z[key] = g
    return z


# ---- linear algebra, nn ----------------------------------------------------------------
row("matmul_nd-2x3-3x4", tc.ops.matmul_nd, torch.matmul, ((2, 3), STD), ((3, 4), STD))
row("matmul_nd-batch-2x3x4-4x5", tc.ops.matmul_nd, torch.matmul, ((2, 3, 4), STD), ((4, 5), STD))
row("matmul_nd-batch-broadcast", lambda a, b: a @ b, torch.matmul,
    ((2, 1, 3, 4), STD), ((5, 4, 2), STD))
row("matmul_nd-1x1", tc.ops.matmul_nd, torch.matmul, ((1, 1), STD), ((1, 1), STD))
for _shape, _axis in [((2, 4), -1), ((3, 2), 0), ((2, 3, 4), 1), ((1, 3), -1), ((4,), 0)]:
    row(f"log_softmax-{shp(_shape)}-axis{_axis}",
        lambda x, _axis=_axis: tc.ops.log_softmax(x, axis=_axis),
        lambda x, _axis=_axis: torch.log_softmax(x, dim=_axis), (_shape, uniform(-3.0, 3.0)))
for _shape, _axis in [((2, 4), -1), ((2, 3, 4), 1)]:  # any out, not only a log_softmax's
    row(f"log_softmax_backward-{shp(_shape)}-axis{_axis}",
        lambda g, o, _axis=_axis: tc.ops.log_softmax_backward(g, o, axis=_axis),
        lambda g, o, _axis=_axis: g - o.exp() * g.sum(_axis, keepdim=True),
        (_shape, STD), (_shape, uniform(-3.0, 0.5)))

# ---- composed ops (no rule of their own) -----------------------------------------------
row("mean-all", tc.ops.mean, torch.mean, ((2, 3, 4), STD))
row("mean-axis1-keep", lambda x: tc.ops.mean(x, axis=1, keepdims=True),
    lambda x: x.mean(1, keepdim=True), ((2, 3, 4), STD))
row("mean-0d", tc.ops.mean, lambda x: x, ((), STD))
row("softmax-last", tc.ops.softmax, lambda x: torch.softmax(x, -1), ((2, 4), uniform(-3.0, 3.0)))
row("softmax-axis0", lambda x: tc.ops.softmax(x, axis=0), lambda x: torch.softmax(x, 0),
    ((3, 2), uniform(-3.0, 3.0)))
row("stack-axis0", lambda a, b: tc.ops.stack([a, b]), lambda a, b: torch.stack([a, b]),
    ((2, 3), STD), ((2, 3), STD))
row("stack-axis-last-0d", lambda a, b, c: tc.ops.stack([a, b, c], axis=-1),
    lambda a, b, c: torch.stack([a, b, c], -1), ((), STD), ((), STD), ((), STD))
row("stack-axis1", lambda a, b: tc.ops.stack((a, b), axis=1), lambda a, b: torch.stack([a, b], 1),
    ((2, 3), STD), ((2, 3), STD))
for _a, _b in [((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)), ((4,), (2, 4, 3)), ((2, 3, 4), (4,))]:
    row(f"matmul-{shp(_a)}-{shp(_b)}", tc.ops.matmul, torch.matmul, (_a, STD), (_b, STD))
row("transpose-default", tc.ops.transpose, lambda x: x.permute(2, 1, 0), ((2, 3, 4), STD))
row("transpose-axes", lambda x: tc.ops.transpose(x, (1, 0, 2)), lambda x: x.permute(1, 0, 2),
    ((2, 3, 4), STD))
row("transpose-T-property", lambda x: x.T, lambda x: x.T, ((2, 3), STD))
row("swapaxes", lambda x: tc.ops.swapaxes(x, 0, -1), lambda x: x.transpose(0, -1), ((2, 3, 4), STD))
row("expand_dims-0", lambda x: tc.ops.expand_dims(x, 0), lambda x: x.unsqueeze(0), ((2, 3), STD))
row("expand_dims-last", lambda x: tc.ops.expand_dims(x, -1), lambda x: x.unsqueeze(-1),
    ((2, 3), STD))
row("expand_dims-0d", lambda x: tc.ops.expand_dims(x, 0), lambda x: x.unsqueeze(0), ((), STD))
row("flatten-default", tc.ops.flatten, lambda x: x.flatten(1), ((2, 3, 4), STD))
row("flatten-start0", lambda x: tc.ops.flatten(x, 0), lambda x: x.flatten(), ((2, 3, 4), STD))
row("square", tc.ops.square, torch.square, ((2, 3), STD))
row("square-method-0d", lambda x: x.square(), torch.square, ((), STD))
row("gather-alias", lambda x: tc.ops.gather(x, tc.tensor([[1], [0]]), axis=1),
    lambda x: torch.take_along_dim(x, torch.tensor([[1], [0]]), 1), ((2, 3), STD))
row("mlp-like", lambda x, w, b: tc.ops.softmax(tc.ops.tanh(x @ w + b)),
    lambda x, w, b: torch.softmax(torch.tanh(x @ w + b), -1),
    ((3, 4), STD), ((4, 2), STD), ((2,), STD))

for _mod in sorted(Path(__file__).resolve().parent.glob("gradrows_*.py")):
    importlib.import_module(_mod.stem)  # each family module appends its rows to ROWS

ROW_IDS = [r.id for r in ROWS]
assert len(set(ROW_IDS)) == len(ROW_IDS), "row ids must be unique"


# ---- helpers ---------------------------------------------------------------------------
def sample(r: Row):
    rng = np.random.default_rng(zlib.crc32(r.id.encode()))
    xs = [np.asarray(s(rng, shape), dtype=np.float64) for shape, s in r.inputs]
    out_shape = r.ref(*[torch.from_numpy(x) for x in xs]).shape
    w = np.asarray(rng.uniform(-1.0, 1.0, tuple(out_shape)), dtype=np.float64)
    return xs, w


def our_grads(r: Row, xs, w):
    ts = [tc.tensor(x, dtype="float64") for x in xs]
    with tc.GradientTape() as tape:
        tape.watch(ts)
        y = r.fn(*ts)
        loss = tc.ops.sum(y * tc.tensor(w, dtype="float64"))
    return y, tape.gradient(loss, ts)


def our_loss(r: Row, xs, w) -> float:
    with tc.no_grad():
        y = r.fn(*[tc.tensor(x, dtype="float64") for x in xs])
    return float(np.sum(y.numpy() * w))


def finite_differences(r: Row, xs, w):
    grads = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            hi = [a.copy() for a in xs]
            lo = [a.copy() for a in xs]
            hi[i][j] += EPS
            lo[i][j] -= EPS
            g[j] = (our_loss(r, hi, w) - our_loss(r, lo, w)) / (2 * EPS)
        grads.append(g)
    return grads


def torch_grads(r: Row, xs, w):
    ts = [torch.tensor(x, dtype=F64, requires_grad=True) for x in xs]
    y = r.ref(*ts)
    loss = (y * torch.from_numpy(w)).sum()
    grads = torch.autograd.grad(loss, ts, allow_unused=True)
    return y.detach().numpy(), [g.numpy() if g is not None else np.zeros(x.shape)
                                for g, x in zip(grads, xs)]


def recorded_ops(out) -> set[str]:
    """Names of the ops on the tape between ``out`` and its leaves."""
    names, seen, stack = set(), set(), [out]
    while stack:
        t = stack.pop()
        if id(t) in seen or t._node is None:
            continue
        seen.add(id(t))
        names.add(t._node.op.name)
        stack.extend(t._node.inputs)
    return names


# ---- the table -------------------------------------------------------------------------
def test_every_registered_differentiable_op_has_a_row():
    covered = set()
    for r in ROWS:
        xs, _ = sample(r)
        ts = [tc.tensor(x, dtype="float64") for x in xs]
        with tc.GradientTape() as tape:
            tape.watch(ts)
            covered |= recorded_ops(r.fn(*ts))
    differentiable = {name for name, op in OPS.items() if op.differentiable}
    assert len(differentiable) >= 30  # the registry was really read
    missing = sorted(differentiable - covered)
    assert not missing, f"registered differentiable ops with no gradcheck row: {missing}"


@pytest.mark.parametrize("r", ROWS, ids=ROW_IDS)
def test_gradient_matches_finite_differences_and_torch(r: Row):
    xs, w = sample(r)
    y, grads = our_grads(r, xs, w)
    ref_y, ref_grads = torch_grads(r, xs, w)

    assert y.dtype == torch.float64
    assert y.shape == ref_y.shape
    np.testing.assert_allclose(y.numpy(), ref_y, rtol=1e-12, atol=1e-12)

    fd = finite_differences(r, xs, w)
    for i, (x, g, g_fd, g_ref) in enumerate(zip(xs, grads, fd, ref_grads)):
        assert g is not None, f"input {i}: no gradient"
        assert g.shape == x.shape, f"input {i}: gradient shape {g.shape} != {x.shape}"
        assert g.dtype == torch.float64
        np.testing.assert_allclose(g.numpy(), g_fd, rtol=1e-6, atol=1e-7,
                                   err_msg=f"input {i} vs finite differences")
        np.testing.assert_allclose(g.numpy(), g_ref, rtol=1e-10, atol=1e-12,
                                   err_msg=f"input {i} vs torch.autograd")


# ---- second order: nested GradientTapes ------------------------------------------------
def f64(values):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype="float64")


X = [-1.3, -0.4, 0.2, 0.9, 1.7]


def _second(fn, x):
    """(f'(x), f''(x)) elementwise, from nested tapes."""
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = fn(x)
        g = inner.gradient(y, x)
    return g, outer.gradient(g, x)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("name, fn, d1, d2", [pytest.param(*c, id=c[0]) for c in [
    ("cube-pow", lambda x: x ** 3, lambda x: 3 * x ** 2, lambda x: 6 * x),
    ("cube-mul", lambda x: x * x * x, lambda x: 3 * x ** 2, lambda x: 6 * x),
    ("exp", tc.ops.exp, np.exp, np.exp),
    ("sigmoid", tc.ops.sigmoid, lambda x: _sig(x) * (1 - _sig(x)),
     lambda x: _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x))),
    ("tanh", tc.ops.tanh, lambda x: 1 - np.tanh(x) ** 2,
     lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("log", tc.ops.log, lambda x: 1 / x, lambda x: -1 / x ** 2),
]])
def test_second_derivative_closed_form(name, fn, d1, d2):
    xv = np.abs(X) if name == "log" else np.array(X)
    g, gg = _second(fn, f64(xv))
    np.testing.assert_allclose(g.numpy(), d1(xv), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gg.numpy(), d2(xv), rtol=1e-12, atol=1e-12)


def test_third_derivative_of_cube_is_six():
    x = f64(X)
    with tc.GradientTape() as t3:
        t3.watch(x)
        with tc.GradientTape() as t2:
            t2.watch(x)  # watch is per tape (TensorFlow): each tape that differentiates x
            with tc.GradientTape() as t1:
                t1.watch(x)
                y = x ** 3
            g1 = t1.gradient(y, x)
        g2 = t2.gradient(g1, x)
    g3 = t3.gradient(g2, x)
    np.testing.assert_allclose(g2.numpy(), 6 * np.array(X), rtol=1e-12)
    np.testing.assert_allclose(g3.numpy(), np.full(5, 6.0), rtol=1e-12)


def test_second_order_matmul_closed_form():
    # L = sum((X @ W) * C): dL/dW = X^T C; d/dX sum(dL/dW * V) = C V^T; it does not depend on W.
    rng = np.random.default_rng(7)
    xa, wa, ca, va = (rng.normal(size=s) for s in [(3, 4), (4, 2), (3, 2), (4, 2)])
    x, w = f64(xa), f64(wa)
    with tc.GradientTape() as outer:
        outer.watch([x, w])
        with tc.GradientTape() as inner:
            inner.watch([x, w])
            loss = tc.ops.sum((x @ w) * f64(ca))
        gw = inner.gradient(loss, w)
        s = tc.ops.sum(gw * f64(va))
    gx, gw2 = outer.gradient(s, [x, w], unconnected_gradients="zero")
    np.testing.assert_allclose(gw.numpy(), xa.T @ ca, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx.numpy(), ca @ va.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(gw2.numpy(), np.zeros((4, 2)))


def test_second_order_through_relu_rule():
    # L = sum(relu(x) * v): dL/dx = v * [x > 0]; d/dv sum(dL/dx * u) = u * [x > 0]; the
    # second derivative in x is 0 (relu is piecewise linear), given as zeros, not None.
    xa = np.array(X)
    va, ua = np.array([0.3, -1.1, 2.0, 0.7, -0.5]), np.array([1.5, 0.2, -0.8, 1.0, 3.0])
    x, v = f64(xa), f64(va)
    with tc.GradientTape() as outer:
        outer.watch([x, v])
        with tc.GradientTape() as inner:
            inner.watch([x, v])
            loss = tc.ops.sum(tc.ops.relu(x) * v)
        gx = inner.gradient(loss, x)
        s = tc.ops.sum(gx * f64(ua))
    gxx, gv = outer.gradient(s, [x, v], unconnected_gradients="zero")
    mask = (xa > 0).astype(np.float64)
    np.testing.assert_array_equal(gx.numpy(), va * mask)
    np.testing.assert_array_equal(gv.numpy(), ua * mask)
    np.testing.assert_array_equal(gxx.numpy(), np.zeros(5))


def test_relu_grad_gives_plus_zero_where_relu_is_zero_even_for_nan():
    # torch's relu backward (threshold_backward) is the oracle: g where y > 0, else +0
    g = torch.tensor([float("nan"), -1.0, float("inf"), 2.0, float("nan")], dtype=F64)
    y = torch.relu(torch.tensor(X, dtype=F64))
    x = torch.tensor(X, dtype=F64, requires_grad=True)
    torch.relu(x).backward(g)
    ours = tc.ops.relu_grad(f64(g.numpy()), f64(y.numpy())).numpy()
    np.testing.assert_array_equal(ours, x.grad.numpy())
    assert not np.signbit(ours[:2]).any() and np.isnan(ours[4])


def test_relu_grad_shape_mismatch_names_both_shapes():
    with pytest.raises(tc.errors.ShapeError, match=r"relu_grad: gradient .*2.*3.* differ"):
        tc.ops.relu_grad(f64(np.ones((2, 3))), f64(np.ones((3, 2))))


def test_second_order_via_backward_create_graph():
    x = tc.Variable(1.5, dtype="float64")
    y = x ** 3
    y.backward(create_graph=True)
    g = x.grad
    assert g.item() == pytest.approx(3 * 1.5 ** 2, rel=1e-12)
    x.grad = None
    g.backward()
    assert x.grad.item() == pytest.approx(6 * 1.5, rel=1e-12)


SECOND_ORDER = [
    ("pow", lambda a: a ** 3, lambda a: a ** 3, [((2, 3), STD)]),
    ("exp", tc.ops.exp, torch.exp, [((2, 3), STD)]),
    ("sigmoid", tc.ops.sigmoid, torch.sigmoid, [((2, 3), STD)]),
    ("tanh", tc.ops.tanh, torch.tanh, [((2, 3), STD)]),
    ("matmul", lambda a, b: tc.ops.tanh(a @ b), lambda a, b: torch.tanh(a @ b),
     [((3, 4), STD), ((4, 2), STD)]),
    ("matmul-1d", lambda a, b: tc.ops.sigmoid(a @ b), lambda a, b: torch.sigmoid(a @ b),
     [((4,), STD), ((4, 2), STD)]),
    ("div-broadcast", lambda a, b: a / b, torch.div, [((2, 3), STD), ((3,), away(0.5, 2.0))]),
    ("sqrt-log", lambda a: tc.ops.sqrt(a) * tc.ops.log(a), lambda a: a.sqrt() * a.log(),
     [((4,), POS)]),
    ("softplus", tc.ops.softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)),
     [((4,), STD)]),
    ("log_softmax", lambda a: tc.ops.log_softmax(a) ** 2, lambda a: torch.log_softmax(a, -1) ** 2,
     [((2, 4), STD)]),
    ("softmax", tc.ops.softmax, lambda a: torch.softmax(a, -1), [((2, 4), STD)]),
    ("logsumexp", lambda a: tc.ops.logsumexp(a, axis=1) ** 2,
     lambda a: torch.logsumexp(a, 1) ** 2, [((2, 4), STD)]),
    ("sigmoid_cross_entropy", lambda x, z: tc.ops.sigmoid_cross_entropy_with_logits(x, z) ** 2,
     lambda x, z: (-(z * TF.logsigmoid(x) + (1 - z) * TF.logsigmoid(-x))) ** 2,
     [((3,), away(0.1, 3.0)), ((3,), uniform(0.0, 1.0))]),
    ("mul-broadcast-sum", lambda a, b: tc.ops.sum(a * b, axis=0) ** 2,
     lambda a, b: (a * b).sum(0) ** 2, [((2, 3), STD), ((3,), STD)]),
    ("gather-reshape", lambda a: tc.ops.reshape(
        tc.ops.take_along_axis(a, tc.tensor([[1], [0]]), axis=1), (2,)) ** 3,
     lambda a: torch.take_along_dim(a, torch.tensor([[1], [0]]), 1).reshape(2) ** 3,
     [((2, 3), STD)]),
]


@pytest.mark.parametrize("name, fn, ref, inputs", SECOND_ORDER, ids=[c[0] for c in SECOND_ORDER])
def test_hessian_vector_product_matches_torch(name, fn, ref, inputs):
    r = Row(name, fn, ref, inputs)
    xs, w = sample(r)
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 1)
    vs = [rng.uniform(-1, 1, x.shape) for x in xs]

    ts = [tc.tensor(x, dtype="float64") for x in xs]
    with tc.GradientTape() as outer:
        outer.watch(ts)
        with tc.GradientTape() as inner:
            inner.watch(ts)
            loss = tc.ops.sum(fn(*ts) * tc.tensor(w, dtype="float64"))
        gs = inner.gradient(loss, ts)
        s = tc.ops.sum(tc.ops.stack([tc.ops.sum(g * tc.tensor(v, dtype="float64"))
                                     for g, v in zip(gs, vs)]))
    hv = outer.gradient(s, ts)

    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    tloss = (ref(*tt) * torch.from_numpy(w)).sum()
    tgs = torch.autograd.grad(tloss, tt, create_graph=True)
    ts_ = sum((g * torch.from_numpy(v)).sum() for g, v in zip(tgs, vs))
    thv = torch.autograd.grad(ts_, tt)
    for g, tg, h, th in zip(gs, tgs, hv, thv):
        np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-10, atol=1e-12)
