"""Convolution and pooling: case A5 ('same' padding with stride 2, TensorFlow's rule) and
the max-pool bullet of A1 (values copied from the project's cases/autodiff.md), closed
forms for padded gradients, transposed convolution as conv2d's adjoint, second-order
gradients against torch.autograd (used only here, as an oracle), and error messages.

Layout is NCHW / NCL throughout. Tolerances (case file): float64 1e-12, float32 1e-6
absolute and 1e-5 relative.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import trainctl as tc
from trainctl.errors import DTypeError, ShapeError

TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-6)}
DTYPES = ["float64", "float32"]


def t(values, dtype="float64"):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype=dtype)


def img(a):
    """A 2-D array as a [1, 1, H, W] image."""
    return np.asarray(a, dtype=np.float64)[None, None]


def close(actual, expected, dtype="float64"):
    np.testing.assert_allclose(np.asarray(actual.numpy(), dtype=np.float64),
                               np.asarray(expected, dtype=np.float64), **TOL[dtype])


def grads(fn, *values, dtype="float64"):
    """(fn(*xs), [d sum(fn(*xs)) / d x]) for constants xs made from ``values``."""
    xs = [t(v, dtype) for v in values]
    with tc.GradientTape() as tape:
        tape.watch(xs)
        y = fn(*xs)
    return y, tape.gradient(y, xs)


# ---- A5: 'same' padding with stride 2 ---------------------------------------------------
K9 = np.arange(9.0).reshape(3, 3)
A5_OUTPUTS = [
    pytest.param(np.ones((2, 2)), K9, [[8.0]], id="2x2-ones"),
    pytest.param(np.ones((1, 1)), K9, [[4.0]], id="1x1-ones"),
    pytest.param(np.arange(16.0).reshape(4, 4), np.ones((3, 3)), [[45.0, 39.0], [66.0, 50.0]],
                 id="4x4-arange"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x, k, expected", A5_OUTPUTS)
def test_a5_same_stride2_outputs(x, k, expected, dtype):
    y = tc.ops.conv2d(t(img(x), dtype), t(img(k), dtype), strides=2, padding="same")
    close(y, img(expected), dtype)


def test_a5_symmetric_padding_gives_the_other_answer():
    # explicit symmetric padding 1 is torch's rule, not TF's 'same': the case file's 24
    y = tc.ops.conv2d(t(img(np.ones((2, 2)))), t(img(K9)), strides=2, padding=1)
    close(y, img([[24.0]]))


A5_TABLE = [(2, 3, 2, 1, 0, 1), (224, 7, 2, 112, 2, 3), (5, 3, 2, 3, 1, 1), (4, 3, 2, 2, 0, 1),
            (7, 2, 2, 4, 0, 1)]


@pytest.mark.parametrize("n, k, s, out, before, after", A5_TABLE)
def test_a5_same_padding_table(n, k, s, out, before, after):
    assert tc.ops.same_padding(n, k, s) == (out, before, after)


def test_same_padding_with_dilation_and_large_strides():
    assert tc.ops.same_padding(5, 3, 1, dilation=2) == (5, 2, 2)   # span 5
    assert tc.ops.same_padding(6, 3, 2, dilation=2) == (3, 1, 2)   # total 3
    assert tc.ops.same_padding(5, 2, 4) == (2, 0, 1)               # total 1
    assert tc.ops.same_padding(3, 1, 5) == (1, 0, 0)
    with pytest.raises(ValueError, match="same_padding"):
        tc.ops.same_padding(4, 3, 0)


def _windows(n, k, s, out, before):
    """Real cells [lo, hi) of each window of a 'same' axis, from the table's ``before``."""
    return [(max(0, j * s - before), min(n, j * s - before + k)) for j in range(out)]


@pytest.mark.parametrize("n, k, s, out, before, after", A5_TABLE)
def test_a5_rule_applies_to_conv_and_pooling(n, k, s, out, before, after):
    row = np.arange(1.0, n + 1.0)  # increasing: a window's max is its last real cell
    x = t(row.reshape(1, 1, 1, n))
    wins = _windows(n, k, s, out, before)
    conv = tc.ops.conv2d(tc.ops.ones_like(x), t(np.ones((1, 1, 1, k))), strides=(1, s),
                         padding="same")
    close(conv, np.array([hi - lo for lo, hi in wins], dtype=float).reshape(1, 1, 1, out))
    mx = tc.ops.max_pool2d(x, (1, k), strides=(1, s), padding="same")
    close(mx, np.array([row[hi - 1] for lo, hi in wins]).reshape(1, 1, 1, out))
    avg = tc.ops.avg_pool2d(x, (1, k), strides=(1, s), padding="same")
    close(avg, np.array([row[lo:hi].mean() for lo, hi in wins]).reshape(1, 1, 1, out))


def test_a5_gradients_of_padded_conv_closed_form():
    # 2x2 ones, kernel arange(9), stride 2, same: pads (0, 1), one window at the top left,
    # so out = sum_{i,j<2} x_ij k_ij: dx = k[:2, :2], dk = the padded input's 3x3 corner
    _, (dx, dk) = grads(lambda x, k: tc.ops.conv2d(x, k, strides=2, padding="same"),
                        img(np.ones((2, 2))), img(K9))
    close(dx, img([[0.0, 1.0], [3.0, 4.0]]))
    close(dk, img([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))


def test_a5_gradients_of_4x4_case_from_the_definition():
    # windows start at rows/cols 0 and 2 (before = 0); cell (r, c) is read by kernel
    # entry (r - 2a, c - 2b): dL/dx counts windows, dL/dk sums the padded input
    x = np.arange(16.0).reshape(4, 4)
    xp = np.pad(x, ((0, 1), (0, 1)))
    dk = np.array([[sum(xp[2 * a + i, 2 * b + j] for a in (0, 1) for b in (0, 1))
                    for j in range(3)] for i in range(3)])
    cover = np.array([1.0, 1.0, 2.0, 1.0])
    for dtype in DTYPES:
        _, (gx, gk) = grads(lambda x, k: tc.ops.conv2d(x, k, strides=2, padding="same"),
                            img(x), img(np.ones((3, 3))), dtype=dtype)
        close(gx, img(np.outer(cover, cover)), dtype)
        close(gk, img(dk), dtype)


@pytest.mark.parametrize("attrs, pad, torch_kw", [
    (dict(strides=2, padding="same"), (0, 1, 0, 1), dict(stride=2)),
    (dict(strides=2, padding="same", groups=2, dilation=2), (1, 2, 1, 2),
     dict(stride=2, groups=2, dilation=2)),
    (dict(strides=(1, 2), padding=(1, 2)), (2, 2, 1, 1), dict(stride=(1, 2))),
])
def test_padded_conv_gradients_float32_match_float64_reference(attrs, pad, torch_kw):
    rng = np.random.default_rng(3)
    xv = rng.normal(size=(2, 4, 6, 6))
    kv = rng.normal(size=(4, 4 // torch_kw.get("groups", 1), 3, 3))
    y, (gx, gk) = grads(lambda x, k: tc.ops.conv2d(x, k, **attrs) ** 2, xv, kv, dtype="float32")
    x64, k64 = (torch.tensor(v, requires_grad=True) for v in (xv, kv))
    ref = TF.conv2d(TF.pad(x64, pad), k64, **torch_kw) ** 2
    rgx, rgk = torch.autograd.grad(ref.sum(), (x64, k64))
    assert y.shape == tuple(ref.shape)
    np.testing.assert_allclose(y.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gx.numpy(), rgx.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gk.numpy(), rgk.numpy(), rtol=1e-5, atol=1e-4)


# ---- A1 (last bullet): max-pool ties route to the first maximum, as torch and TF's MaxPoolGrad --
def torch_pool_grad(x, *args, pad=None, **kw):
    """The oracle: torch.autograd's gradient of sum(F.max_pool2d(x)) (torch routes a window's
    gradient to its first maximum, as TensorFlow's MaxPoolGrad)."""
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    xp = TF.pad(xt, pad, value=-np.inf) if pad else xt
    (dx,) = torch.autograd.grad(TF.max_pool2d(xp, *args, **kw).sum(), xt)
    return dx.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_a1_max_pool_2x2_block_of_equal_values_sums_to_one(dtype):
    y, (dx,) = grads(lambda x: tc.ops.sum(tc.ops.max_pool2d(x, 2)), img(np.full((2, 2), 3.0)),
                     dtype=dtype)
    close(y, 3.0, dtype)
    close(dx, torch_pool_grad(img(np.full((2, 2), 3.0)), 2), dtype)  # [[1, 0], [0, 0]]
    assert float(dx.numpy().sum()) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("x, attrs, args, kw, pad", [
    ([[1.0, 5.0], [5.0, 5.0]], {}, (2,), {}, None),
    # windows [1, 3] and [3, 3] (pool 1x2, stride 1): each window's gradient goes to one cell
    ([[1.0, 3.0, 3.0]], dict(strides=1), ((1, 2), 1), {}, None),
    # overlapping 3x3 windows, stride 1, 'same' (pads 1 each side, -inf): padded cells never win
    (np.kron(np.eye(2), np.ones((2, 2))), dict(strides=1, padding="same"), (3, 1), {},
     (1, 1, 1, 1)),
    # 'same' with stride 2 on an odd size: pads (0, 1) at the bottom/right; all cells equal
    (np.full((3, 3), -2.0), dict(padding="same"), (2,), {}, (0, 1, 0, 1)),
])
def test_max_pool_ties_go_to_the_first_maximum_of_each_window(x, attrs, args, kw, pad):
    pool = args[0]
    _, (dx,) = grads(lambda v: tc.ops.max_pool2d(v, pool, **attrs), img(x))
    close(dx, torch_pool_grad(img(x), *args, pad=pad, **kw))
    assert float(dx.numpy().sum()) == pytest.approx(
        float(np.prod(tc.ops.max_pool2d(t(img(x)), pool, **attrs).shape)))


def test_global_max_pool_ties_split_evenly_as_the_max_reduction():
    _, (dx,) = grads(tc.ops.global_max_pool2d, img([[2.0, 2.0], [1.0, 2.0]]))
    close(dx, img([[1 / 3, 1 / 3], [0.0, 1 / 3]]))


def test_max_pool2d_gather_and_grad_are_adjoint_and_gather_of_x_is_the_pool():
    rng = np.random.default_rng(5)
    x = t(np.round(rng.normal(size=(2, 3, 7, 6)), 1))  # rounded: many ties
    h, g = t(rng.normal(size=(2, 3, 7, 6))), t(rng.normal(size=(2, 3, 4, 3)))
    attrs = dict(pool_size=3, strides=2, padding="same")
    close(tc.ops.max_pool2d_gather(x, x, **attrs), tc.ops.max_pool2d(x, **attrs).numpy())
    lhs = float((tc.ops.max_pool2d_gather(h, x, **attrs) * g).numpy().sum())
    rhs = float((h * tc.ops.max_pool2d_grad(g, x, **attrs)).numpy().sum())
    assert lhs == pytest.approx(rhs, rel=1e-12)
    with pytest.raises(ShapeError, match=r"^max_pool2d_grad: gradient \[2,3,4,4\] is not "
                       r"max_pool2d's output shape for input \[2,3,7,6\] \(\[2,3,4,3\]\)$"):
        tc.ops.max_pool2d_grad(t(np.zeros((2, 3, 4, 4))), x, **attrs)
    with pytest.raises(ShapeError, match=r"^max_pool2d_gather: values \[2,3,4,3\] and input"):
        tc.ops.max_pool2d_gather(g, x, **attrs)


def test_pooling_same_padding_values_and_gradients():
    x = np.arange(9.0).reshape(3, 3)  # pool 2, stride 2, same: pads (0, 1)
    y, (dx,) = grads(lambda x: tc.ops.avg_pool2d(x, 2, padding="same"), img(x))
    close(y, img([[2.0, 3.5], [6.5, 8.0]]))  # divides by the real cells: 4, 2, 2, 1
    close(dx, img([[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]]))
    y, (dx,) = grads(lambda x: tc.ops.max_pool2d(x, 2, padding="same"), img(-(x + 1)))
    close(y, img([[-1.0, -3.0], [-7.0, -9.0]]))  # a zero pad would have won with 0
    close(dx, img([[1.0, 0, 1], [0, 0, 0], [1, 0, 1]]))


def test_global_average_pool_and_bias_add():
    rng = np.random.default_rng(0)
    xv, kv, bv = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 3, 3)), [0.5, -1.0]
    y, (gx,) = grads(lambda x: tc.ops.global_average_pool2d(x, keepdims=True), xv)
    close(y, xv.mean(axis=(2, 3), keepdims=True))
    close(gx, np.full(xv.shape, 1 / 20))
    # bias is a separate add; the engine unbroadcasts: db = N * H' * W' for L = sum(y)
    _, (_, gb) = grads(lambda k, b: tc.ops.conv2d(t(xv), k, padding="same")
                       + tc.ops.reshape(b, (1, 2, 1, 1)), kv, bv)
    close(gb, [40.0, 40.0])


# ---- conv2d_transpose: conv2d's adjoint, TF's output sizes ----------------------------------
ADJOINT = [
    (dict(strides=2, padding="same"), (1, 2, 3, 3), (2, 3, 3, 3)),
    (dict(strides=(2, 3), padding="same", dilation=(2, 1)), (2, 2, 3, 2), (2, 1, 3, 2)),
    (dict(strides=3), (1, 2, 2, 3), (2, 4, 2, 2)),
    (dict(strides=2, padding=1, groups=2, output_shape=(6, 7)), (1, 4, 3, 4), (4, 3, 3, 3)),
]


@pytest.mark.parametrize("attrs, x_shape, k_shape", ADJOINT)
def test_conv2d_transpose_is_the_adjoint_of_conv2d(attrs, x_shape, k_shape):
    rng = np.random.default_rng(zlib.crc32(repr(attrs).encode()))
    x, k = t(rng.normal(size=x_shape)), t(rng.normal(size=k_shape))
    y = tc.ops.conv2d_transpose(x, k, **attrs)
    u = t(rng.normal(size=y.shape))
    conv_attrs = {a: v for a, v in attrs.items() if a != "output_shape"}
    back = tc.ops.conv2d(u, k, **conv_attrs)
    assert back.shape == x.shape
    lhs, rhs = float(np.sum(back.numpy() * x.numpy())), float(np.sum(u.numpy() * y.numpy()))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n, k, s, padding, d, m", [
    (3, 3, 2, "same", 1, 6), (3, 3, 2, "valid", 1, 7), (3, 2, 3, "valid", 1, 9),
    (4, 3, 1, "valid", 1, 6), (3, 3, 2, 1, 1, 5), (5, 3, 2, "same", 2, 10),
    (2, 3, 2, "valid", 2, 7),
])
def test_conv2d_transpose_default_output_size(n, k, s, padding, d, m):
    y = tc.ops.conv2d_transpose(t(np.ones((1, 1, n, n))), t(np.ones((1, 1, k, k))), strides=s,
                                padding=padding, dilation=d)
    assert y.shape == (1, 1, m, m)


def test_conv2d_transpose_same_stride2_values():
    # full transpose of 2x2 ones by 3x3 ones is 5x5 with row coverage 1,1,2,1,1; 'same'
    # crops pads (0, 1): the extra row/column goes at the bottom/right
    y = tc.ops.conv2d_transpose(t(img(np.ones((2, 2)))), t(img(np.ones((3, 3)))), strides=2,
                                padding="same")
    c = np.array([1.0, 1.0, 2.0, 1.0])
    close(y, img(np.outer(c, c)))


# ---- second order: Hessian-vector products against torch.autograd ---------------------------
def _pad(p):
    return lambda x: TF.pad(x, p)


SECOND = [
    ("conv2d-same-s2-groups", lambda x, k: tc.ops.tanh(tc.ops.conv2d(x, k, strides=2,
                                                                     padding="same", groups=2)),
     lambda x, k: torch.tanh(TF.conv2d(_pad((0, 1, 0, 1))(x), k, stride=2, groups=2)),
     [(1, 4, 4, 4), (4, 2, 3, 3)]),
    ("conv2d_bias-same", lambda x, k, b: tc.ops.tanh(tc.ops.conv2d_bias(x, k, b, padding="same")),
     lambda x, k, b: torch.tanh(TF.conv2d(x, k, b, padding=1)),
     [(2, 2, 4, 4), (3, 2, 3, 3), (3,)]),
    ("conv2d-d2-p1", lambda x, k: tc.ops.conv2d(x, k, padding=1, dilation=2) ** 2,
     lambda x, k: TF.conv2d(x, k, padding=1, dilation=2) ** 2, [(1, 2, 5, 5), (2, 2, 2, 2)]),
    ("conv2d_transpose-same-s2", lambda x, k: tc.ops.conv2d_transpose(
        x, k, strides=2, padding="same") ** 2,
     lambda x, k: TF.conv_transpose2d(x, k, stride=2)[..., :6, :6] ** 2,
     [(1, 2, 3, 3), (2, 2, 3, 3)]),
    ("conv1d-same-s2", lambda x, k: tc.ops.sigmoid(tc.ops.conv1d(x, k, 2, "same")),
     lambda x, k: torch.sigmoid(TF.conv1d(TF.pad(x, (0, 1)), k, stride=2)),
     [(2, 2, 6), (3, 2, 3)]),
    ("max_pool2d-same", lambda x: tc.ops.max_pool2d(x, 2, padding="same") ** 3,
     lambda x: TF.max_pool2d(TF.pad(x, (0, 1, 0, 1), value=-np.inf), 2) ** 3, [(1, 2, 5, 5)]),
    ("avg_pool2d-same", lambda x: tc.ops.avg_pool2d(tc.ops.tanh(x), 2, padding="same") ** 2,
     lambda x: TF.avg_pool2d(torch.tanh(x), 2, padding=0, ceil_mode=True) ** 2,
     [(1, 1, 5, 5)]),
]


@pytest.mark.parametrize("name, fn, ref, shapes", SECOND, ids=[c[0] for c in SECOND])
def test_hessian_vector_product_matches_torch(name, fn, ref, shapes):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = [rng.normal(size=s) for s in shapes]
    vs = [rng.normal(size=s) for s in shapes]
    ts = [t(x) for x in xs]
    with tc.GradientTape() as outer:
        outer.watch(ts)
        with tc.GradientTape() as inner:
            inner.watch(ts)
            y = fn(*ts)
        gs = inner.gradient(y, ts)
        s = tc.ops.sum(tc.ops.stack([tc.ops.sum(g * t(v)) for g, v in zip(gs, vs)]))
    hv = outer.gradient(s, ts, unconnected_gradients="zero")

    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    tgs = torch.autograd.grad(ref(*tt).sum(), tt, create_graph=True)
    ths = torch.autograd.grad(sum((g * torch.from_numpy(v)).sum() for g, v in zip(tgs, vs)),
                              tt, allow_unused=True)
    for g, tg, h, th in zip(gs, tgs, hv, ths):
        np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
        th = np.zeros(h.shape) if th is None else th.numpy()
        np.testing.assert_allclose(h.numpy(), th, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_through_conv_matches_torch():
    # d/dk of sum((dL/dx)^2), L = sum(tanh(conv2d(x, k, same, stride 2)) * w)
    rng = np.random.default_rng(11)
    xv, kv, wv = rng.normal(size=(1, 2, 4, 4)), rng.normal(size=(3, 2, 3, 3)), rng.normal(
        size=(1, 3, 2, 2))
    x, k = t(xv), tc.Variable(kv, dtype="float64")
    with tc.GradientTape() as outer:
        with tc.GradientTape() as inner:
            inner.watch(x)
            loss = tc.ops.sum(tc.ops.tanh(tc.ops.conv2d(x, k, strides=2, padding="same")) * t(wv))
        gx = inner.gradient(loss, x)
        penalty = tc.ops.sum(gx * gx)
    gk = outer.gradient(penalty, k)
    tx, tk = torch.tensor(xv, requires_grad=True), torch.tensor(kv, requires_grad=True)
    ty = torch.tanh(TF.conv2d(TF.pad(tx, (0, 1, 0, 1)), tk, stride=2))
    tl = (ty * torch.from_numpy(wv)).sum()
    (tgx,) = torch.autograd.grad(tl, tx, create_graph=True)
    (tgk,) = torch.autograd.grad((tgx * tgx).sum(), tk)
    np.testing.assert_allclose(gk.numpy(), tgk.numpy(), rtol=1e-10, atol=1e-12)


# ---- errors ------------------------------------------------------------------------------
def z(*shape, dtype="float32"):
    return tc.tensor(np.zeros(shape), dtype=dtype)


@pytest.mark.parametrize("call, message", [
    (lambda: tc.ops.conv2d(z(2, 3, 8, 8), z(4, 2, 3, 3)),
     "conv2d: input [2,3,8,8] has 3 channels, kernel [4,2,3,3] with groups 1 expects 2"),
    (lambda: tc.ops.conv2d(z(2, 3, 3, 3), z(4, 3, 5, 5)),
     "conv2d: kernel [4,3,5,5] is larger than the padded input 3x3 (input [2,3,3,3], "
     "padding 'valid')"),
    (lambda: tc.ops.conv2d(z(1, 1, 4, 4), z(1, 1, 3, 3), dilation=2, padding=(0, 1)),
     "conv2d: kernel [1,1,3,3] (spanning 5x5 with dilation 2x2) is larger than the padded "
     "input 4x6 (input [1,1,4,4], padding (0, 1))"),
    (lambda: tc.ops.conv2d(z(2, 3, 8), z(4, 3, 3, 3)),
     "conv2d: input [2,3,8] must be 4-D [N,C,H,W]"),
    (lambda: tc.ops.conv2d(z(2, 3, 8, 8), z(4, 3, 3)),
     "conv2d: kernel [4,3,3] must be 4-D [out_channels,in_channels/groups,kh,kw]"),
    (lambda: tc.ops.conv2d(z(1, 4, 5, 5), z(3, 2, 3, 3), groups=2),
     "conv2d: kernel [3,2,3,3] has 3 output channels, not divisible by groups 2"),
    (lambda: tc.ops.conv1d(z(2, 3, 8), z(4, 2, 3)),
     "conv1d: input [2,3,8] has 3 channels, kernel [4,2,3] with groups 1 expects 2"),
    (lambda: tc.ops.conv1d(z(2, 3, 8, 8), z(4, 3, 3)),
     "conv1d: input [2,3,8,8] must be 3-D [N,C,L]"),
    (lambda: tc.ops.conv1d(z(1, 1, 2), z(1, 1, 3)),
     "conv1d: kernel [1,1,3] is larger than the padded input 2 (input [1,1,2], padding 'valid')"),
    (lambda: tc.ops.conv2d_transpose(z(1, 3, 4, 4), z(2, 3, 3, 3)),
     "conv2d_transpose: input [1,3,4,4] has 3 channels, kernel [2,3,3,3] expects 2 "
     "(kernel is [in_channels,out_channels/groups,kh,kw])"),
    (lambda: tc.ops.conv2d_transpose(z(1, 2, 3, 3), z(2, 1, 3, 3), strides=2, output_shape=(9, 9)),
     "conv2d_transpose: output_shape [9,9] does not fit input [1,2,3,3]: conv2d with these "
     "attributes maps [9,9] to [4,4]"),
    (lambda: tc.ops.conv2d_weight_grad(z(1, 2, 5, 5), z(1, 3, 4, 4), (3, 3)),
     "conv2d_weight_grad: gradient [1,3,4,4] is not the output shape of conv2d of input "
     "[1,2,5,5] with kernel [3,2,3,3] ([1,3,3,3])"),
    (lambda: tc.ops.max_pool2d(z(1, 1, 2, 2), 3),
     "max_pool2d: pool 3x3 is larger than the padded input 2x2 (input [1,1,2,2], padding 'valid')"),
    (lambda: tc.ops.avg_pool2d(z(1, 2, 2), 2), "avg_pool2d: input [1,2,2] must be 4-D [N,C,H,W]"),
    (lambda: tc.ops.global_average_pool2d(z(2, 3)),
     "global_average_pool2d: input [2,3] must be 4-D [N,C,H,W]"),
    (lambda: tc.ops.fold2d(z(1, 8, 5), (4, 4), 2, strides=2),
     "fold2d: patches [1,8,5] have 5 positions; output_size [4,4] has 4 windows"),
])
def test_shape_errors_name_the_op_and_shapes(call, message):
    with pytest.raises(ShapeError) as info:
        call()
    assert str(info.value) == message


def test_same_padding_never_rejects_a_large_kernel():
    y = tc.ops.conv2d(z(1, 1, 3, 3), z(2, 1, 5, 5), padding="same")
    assert y.shape == (1, 2, 3, 3)


def test_dtype_and_attribute_errors():
    with pytest.raises(DTypeError, match=r"^conv2d: input dtype int64 is not floating$"):
        tc.ops.conv2d(tc.tensor(np.zeros((1, 1, 3, 3), dtype=np.int64)), z(1, 1, 2, 2))
    with pytest.raises(DTypeError, match=r"^max_pool2d: input dtype int64 is not floating$"):
        tc.ops.max_pool2d(tc.tensor(np.zeros((1, 1, 2, 2), dtype=np.int64)), 2)
    with pytest.raises(ValueError, match="conv2d: padding must be 'valid', 'same' or ints"):
        tc.ops.conv2d(z(1, 1, 3, 3), z(1, 1, 2, 2), padding="full")
    with pytest.raises(ValueError, match="max_pool2d: strides must be an int >= 1"):
        tc.ops.max_pool2d(z(1, 1, 3, 3), 2, strides=0)


def test_gradient_only_for_tracked_operands_and_backward_into_variable():
    x, k = t(np.ones((1, 1, 3, 3))), tc.Variable(np.ones((2, 1, 2, 2)), dtype="float64")
    y = tc.ops.sum(tc.ops.conv2d(x, k))
    y.backward()
    close(k.grad, np.full((2, 1, 2, 2), 4.0))  # 4 windows, each reads every kernel entry once
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = tc.ops.sum(tc.ops.conv2d(x, t(np.ones((2, 1, 2, 2)))))
    close(tape.gradient(y, x), img([[2.0, 4.0, 2.0], [4.0, 8.0, 4.0], [2.0, 4.0, 2.0]]))
