"""Indexing family: forward values against numpy (exact), gradients against np.add.at and
closed forms, documented conventions (clip boundaries, zero rule of floor/round/ceil, top_k
ties), error messages, and second order (nested tapes) against torch.autograd.

Gradient tables against torch and finite differences are in gradrows_indexing.py.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import trainctl as tc
from trainctl.errors import DTypeError, ShapeError

ops = tc.ops
X = np.arange(60, dtype=np.float64).reshape(3, 4, 5) - 17.5
M = X[..., 0] > -5


def f64(a):
    return tc.tensor(np.asarray(a, dtype=np.float64), dtype="float64")


def grad(fn, *xs):
    """d sum(fn(*xs) * w) / d xs for a seeded weight w of the output's shape, and w."""
    ts = [f64(x) for x in xs]
    with tc.GradientTape() as tape:
        tape.watch(ts)
        y = fn(*ts)
        w = np.random.default_rng(0).uniform(-1, 1, y.shape)
        loss = ops.sum(y * f64(w))
    return tape.gradient(loss, ts), w


# ---- getitem: values equal numpy's, gradients equal np.add.at ----------------------------
KEYS = {
    "reverse": np.s_[::-1], "3:0:-2": np.s_[:, 3:0:-2], "neg-steps-all": np.s_[::-2, -1::-3, 3:1:-1],
    "empty-neg-slice": np.s_[0:2:-1], "ellipsis-neg": np.s_[..., ::-2], "list": np.s_[[2, 0, 2]],
    "2d-array": np.s_[np.array([[0, 1], [1, 1]])], "two-arrays": np.s_[[0, 2, 2], [3, 3, 0]],
    "broadcast-arrays": np.s_[[[0], [1]], :, [4, 4, 0]], "int-slice-array": np.s_[1, :, [0, 4]],
    "array-slice-int": np.s_[[2, 0], 1:, -1], "adjacent-int-array": np.s_[:, 0, [3, 3]],
    "mask-2d": np.s_[M], "mask-1d-int": np.s_[np.array([True, False, True]), 2],
    "mask-axis1-neg": np.s_[::-1, np.array([True, False, True, True])],
    "mask-all-axes": np.s_[X > 0], "none-array": np.s_[None, :, [1, 1]],
    "0d-int-array": np.s_[np.array(2), [0, 1]], "empty-list": np.s_[[]],
    "negative-ints": np.s_[[-1, -3], -2], "bool-scalar": np.s_[True],
}


@pytest.mark.parametrize("key", KEYS.values(), ids=KEYS.keys())
def test_getitem_matches_numpy_and_np_add_at(key):
    (g,), w = grad(lambda x: x[key], X)
    expected = X[key]
    got = f64(X)[key].numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    scattered = np.zeros_like(X)
    np.add.at(scattered, key, w)
    np.testing.assert_array_equal(g.numpy(), scattered)


def test_getitem_accepts_int_and_bool_tensors_like_numpy_arrays():
    x = f64(X)
    np.testing.assert_array_equal(x[tc.tensor([2, 0]), ..., tc.tensor([1, 1])].numpy(),
                                  X[[2, 0], ..., [1, 1]])
    np.testing.assert_array_equal(x[tc.tensor(M)].numpy(), X[M])
    np.testing.assert_array_equal(x[torch.tensor([1, 1], dtype=torch.int32)].numpy(), X[[1, 1]])
    np.testing.assert_array_equal(x[np.array([0, 2], dtype=np.uint8)].numpy(), X[[0, 2]])


def test_repeated_indices_accumulate_in_the_gradient():
    x = f64(np.zeros(4))
    with tc.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(x[[1, 1, 3, 1]])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0.0, 3.0, 0.0, 1.0])


def test_gradient_through_getitem_on_a_variable():
    v = tc.Variable(np.arange(6.0).reshape(2, 3), dtype="float64")
    with tc.GradientTape() as tape:
        y = ops.sum(v[:, ::-1][[0, 0]] * f64([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(tape.gradient(y, v).numpy(), [[6.0, 4.0, 2.0], [0, 0, 0]])


GETITEM_ERRORS = [
    (np.s_[[0, 3]], ShapeError, "getitem: index 3 is out of bounds for dimension 0 with size 3 "
                                "(shape [3,4])"),
    (np.s_[np.array([True, False])], ShapeError, "getitem: The shape of the mask [2]"),
    (np.s_[0, 0, 0], ShapeError, "getitem: too many indices (3) for a tensor of shape [3,4]"),
    (np.s_[::0], ShapeError, "getitem: slice step cannot be zero (shape [3,4])"),
    (np.s_[..., 0, ...], ShapeError, "getitem: an index can only have a single ellipsis"),
    (np.s_[[0.5, 1.0]], DTypeError, "getitem: index arrays must hold integers or bools, got float64"),
    (tc.tensor([0.0]), DTypeError, "getitem: index tensors must be integer or bool, got float32"),
    (np.s_["a"], TypeError, "getitem: index 'a' is not supported"),
]


@pytest.mark.parametrize("key, exc, message", GETITEM_ERRORS, ids=[e[2][:30] for e in GETITEM_ERRORS])
def test_getitem_errors_name_the_op_and_shape(key, exc, message):
    with pytest.raises(exc) as info:
        f64(np.zeros((3, 4)))[key]
    assert str(info.value).startswith(message)


# ---- lookups, scatters, one_hot, top_k ---------------------------------------------------
def test_embedding_lookup_values_and_repeated_ids_accumulate():
    table = np.arange(8.0).reshape(4, 2)
    (g,), _ = grad(lambda t: ops.sum(ops.embedding_lookup(t, tc.tensor([1, 1, 3])), axis=1), table)
    np.testing.assert_array_equal(
        ops.embedding_lookup(f64(table), tc.tensor([[1, 1], [3, 0]])).numpy(), table[[[1, 1], [3, 0]]])
    ts = [f64(table)]
    with tc.GradientTape() as tape:
        tape.watch(ts)
        y = ops.sum(ops.embedding_lookup(ts[0], tc.tensor([1, 1, 3])))
    np.testing.assert_array_equal(tape.gradient(y, ts[0]).numpy(), [[0, 0], [2, 2], [0, 0], [1, 1]])
    assert g.shape == (4, 2)


@pytest.mark.parametrize("table, ids, exc, message", [
    ((2, 2, 2), [0], ShapeError, "embedding_lookup: table must be [vocab, dim], got [2,2,2]"),
    ((4, 2), [0.0], DTypeError, "embedding_lookup: ids must be integers, got float64"),
    ((4, 2), [1, 4], ShapeError, "embedding_lookup: ids out of range [0, 4) for table [4,2]"),
])
def test_embedding_lookup_errors(table, ids, exc, message):
    ids = f64(ids) if isinstance(ids[0], float) else tc.tensor(ids)
    with pytest.raises(exc) as info:
        ops.embedding_lookup(f64(np.zeros(table)), ids)
    assert str(info.value) == message


def test_scatter_add_matches_np_add_at():
    x = np.arange(8.0).reshape(2, 4)
    idx = np.array([[0, 0, 3], [2, 2, 2]])
    upd = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    expected = x.copy()
    for i in range(2):
        np.add.at(expected[i], idx[i], upd[i])
    np.testing.assert_array_equal(ops.scatter_add(f64(x), tc.tensor(idx), f64(upd), axis=1).numpy(),
                                  expected)
    (gx, gu), w = grad(lambda a, u: ops.scatter_add(a, tc.tensor(idx), u, axis=1), x, upd)
    np.testing.assert_array_equal(gx.numpy(), w)
    np.testing.assert_array_equal(gu.numpy(), np.take_along_axis(w, idx, axis=1))


def test_scatter_add_errors():
    with pytest.raises(ShapeError, match=r"scatter_add: updates \[3,3\] do not fit into \[2,4\] along axis 1"):
        ops.scatter_add(f64(np.zeros((2, 4))), tc.tensor([[0], [1], [2]]), f64(np.ones((3, 3))), 1)
    with pytest.raises(ShapeError, match=r"scatter_add: indices must be integers"):
        ops.scatter_add(f64(np.zeros((2, 4))), f64([[0.0], [1.0]]), f64(np.ones((2, 1))), 1)


def test_one_hot_values_dtype_and_no_gradient():
    out = ops.one_hot(tc.tensor([[0, 2], [5, -1]]), 3)
    np.testing.assert_array_equal(out.numpy(), [[[1, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 0, 0]]])
    assert out.dtype == torch.float32
    assert ops.one_hot(tc.tensor([1]), 2, dtype="float64").dtype == torch.float64
    assert not ops.OPS.get("one_hot").differentiable
    with pytest.raises(DTypeError, match="one_hot: indices must be integers, got float32"):
        ops.one_hot(tc.tensor([1.0]), 3)


def test_top_k_values_indices_ties_and_gradient():
    x = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.5, -1.0, 4.0, 4.0, 0.0]])
    values, indices = ops.top_k(f64(x), 3)
    order = np.argsort(-x, axis=-1, kind="stable")[:, :3]  # equal values: lower index first
    np.testing.assert_array_equal(indices.numpy(), order)
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x, order, -1))
    assert indices.dtype == torch.int64 and not indices.tracked
    (g,), w = grad(lambda a: ops.top_k(a, 2)[0], x)
    expected = np.zeros_like(x)
    np.put_along_axis(expected, order[:, :2], w, axis=-1)
    np.testing.assert_array_equal(g.numpy(), expected)
    with pytest.raises(ShapeError, match=r"top_k: k=6 does not fit the last axis of \[2,5\]"):
        ops.top_k(f64(x), 6)


# ---- flip, pad, split, squeeze, tile, repeat --------------------------------------------
@pytest.mark.parametrize("axis", [0, -1, (0, 2), None])
def test_flip_matches_numpy(axis):
    np.testing.assert_array_equal(ops.flip(f64(X), axis).numpy(), np.flip(X, axis))
    np.testing.assert_array_equal(f64(X).flip(1).numpy(), np.flip(X, 1))


PADS = [
    ([[1, 2], [0, 3]], "constant", 0.0), ([[2, 0], [1, 1]], "constant", -1.5),
    ([[2, 2], [3, 1]], "reflect", 0), ([[3, 3], [4, 0]], "symmetric", 0),
    ([[0, 0], [0, 0]], "REFLECT", 0),
]


@pytest.mark.parametrize("paddings, mode, value", PADS, ids=[f"{p[1]}-{p[0]}" for p in PADS])
def test_pad_matches_numpy_and_gradient_folds_back(paddings, mode, value):
    x = np.arange(12.0).reshape(3, 4)
    kw = {"constant_values": value} if mode == "constant" else {}
    expected = np.pad(x, paddings, mode=mode.lower(), **kw)
    np.testing.assert_array_equal(ops.pad(f64(x), paddings, mode, **kw).numpy(), expected)
    # the gradient of sum(pad(x) * w) is sum of w over the padded positions that copy x[i, j]
    (g,), w = grad(lambda a: ops.pad(a, paddings, mode, **kw), x)
    origin = np.pad(np.arange(12).reshape(3, 4), paddings, mode=mode.lower(),
                    **({"constant_values": -1} if mode == "constant" else {}))
    folded = np.bincount(origin[origin >= 0], weights=w[origin >= 0], minlength=12).reshape(3, 4)
    np.testing.assert_allclose(g.numpy(), folded, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("paddings, mode, exc, message", [
    ([[1, 1]], "constant", ShapeError, "pad: paddings [[1,1]] do not match rank 2 of [3,4]"),
    ([[1, 1], [1]], "constant", ShapeError, "pad: paddings [[1,1],[1]] do not match rank 2 of [3,4]"),
    ([[1, -1], [0, 0]], "constant", ShapeError, "pad: paddings [[1,-1],[0,0]] must be non-negative"),
    ([[3, 0], [0, 0]], "reflect", ShapeError, "pad: reflect padding 3 on axis 0 needs a size of at "
                                              "least 4, got [3,4]"),
    ([[0, 0], [0, 5]], "symmetric", ShapeError, "pad: symmetric padding 5 on axis 1 needs a size of "
                                                "at least 5, got [3,4]"),
    ([[0, 0], [0, 0]], "edge", ValueError, "pad: mode must be 'constant', 'reflect' or 'symmetric', "
                                           "got 'edge'"),
])
def test_pad_errors(paddings, mode, exc, message):
    with pytest.raises(exc) as info:
        ops.pad(f64(np.zeros((3, 4))), paddings, mode)
    assert str(info.value).startswith(message)


def test_split_matches_numpy_and_errors():
    pieces = ops.split(f64(X), [1, -1, 2], axis=2)
    for got, exp in zip(pieces, np.split(X, [1, 3], axis=2)):
        np.testing.assert_array_equal(got.numpy(), exp)
    assert [p.shape for p in ops.split(f64(X), 2, axis=1)] == [(3, 2, 5), (3, 2, 5)]
    assert isinstance(ops.split(f64(X), 3), list)
    with pytest.raises(ShapeError, match=r"split: cannot split axis 1 of size 4 of \[3,4,5\] into 3 equal"):
        ops.split(f64(X), 3, axis=1)
    with pytest.raises(ShapeError, match=r"split: sizes \[2, 2\] do not add up to 5, the size of axis "
                                         r"-1 of \[3,4,5\]"):
        ops.split(f64(X), [2, 2], axis=-1)


def test_squeeze_unsqueeze_and_errors():
    x = f64(np.zeros((1, 3, 1, 2)))
    assert ops.squeeze(x).shape == (3, 2)
    assert x.squeeze((0, -2)).shape == (3, 2)
    assert ops.squeeze(x, 2).shape == (1, 3, 2)
    assert ops.unsqueeze(f64(np.zeros((3, 2))), -1).shape == (3, 2, 1)
    with pytest.raises(ShapeError, match=r"squeeze: cannot squeeze axis 1 of size 3 in \[1,3,1,2\]"):
        ops.squeeze(x, 1)


@pytest.mark.parametrize("reps", [(2,), (1, 3), (2, 1, 2), (2, 2, 1, 1), (0, 1)])
def test_tile_matches_numpy(reps):
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ops.tile(f64(x), reps).numpy(), np.tile(x, reps))


@pytest.mark.parametrize("repeats, axis", [(2, 0), (3, None), ([1, 0, 2], 1), ([2], 0), (0, 1)])
def test_repeat_matches_numpy(repeats, axis):
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ops.repeat(f64(x), repeats, axis).numpy(), np.repeat(x, repeats, axis))


def test_repeat_and_tile_errors():
    x = f64(np.zeros((2, 3)))
    with pytest.raises(ShapeError, match=r"repeat: 2 repeats do not match axis 1 of size 3 of \[2,3\]"):
        ops.repeat(x, [1, 2], axis=1)
    with pytest.raises(ShapeError, match="repeat: repeats must be non-negative integers"):
        ops.repeat(x, -1, axis=0)
    with pytest.raises(ShapeError, match=r"tile: multiples \[-1\] must be non-negative"):
        ops.tile(x, [-1])


# ---- cumsum ----------------------------------------------------------------------------
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum_matches_numpy(axis, exclusive, reverse):
    y = np.flip(X, axis) if reverse else X
    c = np.cumsum(y, axis) - (y if exclusive else 0)
    expected = np.flip(c, axis) if reverse else c
    got = ops.cumsum(f64(X), axis, exclusive=exclusive, reverse=reverse).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_cumsum_exclusive_first_is_zero_and_errors():
    np.testing.assert_array_equal(ops.cumsum(tc.tensor([1, 2, 3]), exclusive=True).numpy(), [0, 1, 3])
    np.testing.assert_array_equal(f64([1, 2, 3]).cumsum(0, reverse=True).numpy(), [6, 5, 3])
    with pytest.raises(ShapeError, match=r"cumsum: needs a tensor of rank >= 1, got \[\]"):
        ops.cumsum(f64(1.0))
    with pytest.raises(ShapeError, match="cumsum: axis 2 is out of range for a tensor of rank 2"):
        ops.cumsum(f64(np.zeros((2, 2))), 2)


# ---- einsum ----------------------------------------------------------------------------
EQS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("i,j->ij", [(3,), (2,)]), ("ijk->kij", [(2, 3, 4)]), ("ji", [(2, 3)]), ("ij,kj", [(2, 3), (4, 3)]),
    ("ij->", [(2, 3)]), ("i,i", [(4,), (4,)]), ("ii->i", [(3, 3)]), ("ii", [(3, 3)]),
    ("iij,j->ij", [(2, 2, 3), (3,)]), ("...ij,...jk->...ik", [(2, 2, 3), (3, 2)]),
    ("...i,...i->...", [(2, 1, 3), (4, 3)]), ("...ij->...", [(2, 3, 4)]), ("i...->...i", [(2, 3, 4)]),
    ("a b , b c -> a c", [(2, 3), (3, 2)]), ("ij,jk,kl->li", [(2, 3), (3, 2), (2, 4)]),
    ("Ab,bA->A", [(2, 3), (3, 2)]),
]


@pytest.mark.parametrize("eq, shapes", EQS, ids=[e[0] for e in EQS])
def test_einsum_matches_numpy(eq, shapes):
    rng = np.random.default_rng(zlib.crc32(eq.encode()))
    xs = [rng.uniform(-1, 1, s) for s in shapes]
    got = ops.einsum(eq, *[f64(x) for x in xs]).numpy()
    expected = np.einsum(eq.replace(" ", ""), *xs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eq, shapes, exc, message", [
    ("ij,jk->ik", [(2, 3), (4, 5)], ShapeError, "einsum: subscript 'j' has sizes 3 and 4 in "
                                                "'ij,jk->ik' for shapes [2,3], [4,5]"),
    ("ij,jk->ik", [(2, 3)], ShapeError, "einsum: equation 'ij,jk->ik' has 2 operand(s) but 1 were given"),
    ("ijk->i", [(2, 3)], ShapeError, "einsum: subscripts 'ijk' of operand 0 do not match its shape [2,3]"),
    ("ij->k", [(2, 3)], ValueError, "einsum: output subscript 'k' of 'ij->k' must appear once"),
    ("ij->ii", [(2, 2)], ValueError, "einsum: output subscript 'i' of 'ij->ii' must appear once"),
    ("i1->i", [(2, 3)], ValueError, "einsum: invalid subscript '1' in 'i1->i'"),
    ("ij->i->j", [(2, 3)], ValueError, "einsum: equation 'ij->i->j' has more than one '->'"),
    ("...i,...i", [(2, 3), (4, 3)], ShapeError, "einsum: '...' axes do not broadcast in '...i,...i'"),
])
def test_einsum_errors(eq, shapes, exc, message):
    with pytest.raises(exc) as info:
        ops.einsum(eq, *[f64(np.ones(s)) for s in shapes])
    assert str(info.value).startswith(message)


# ---- clip, floor, round, ceil ------------------------------------------------------------
def test_clip_values_and_gradient_convention_at_the_boundaries():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(ops.clip(f64(x), -1.0, 1.0).numpy(), np.clip(x, -1, 1))
    np.testing.assert_array_equal(f64(x).clip(hi=0.5).numpy(), np.clip(x, None, 0.5))
    np.testing.assert_array_equal(ops.clip(tc.tensor([-5, 5]), lo=0).numpy(), [0, 5])
    lo, hi = np.array([-1.0, -1, -1, -1, 3]), np.array([1.0, 1, 1, 1, 0])  # last: lo > hi gives hi
    (gx, glo, ghi), w = grad(ops.clip, x, lo, hi)
    np.testing.assert_array_equal(ops.clip(f64(x), f64(lo), f64(hi)).numpy(), np.clip(x, lo, hi))
    np.testing.assert_array_equal(gx.numpy(), w * [0, 1, 1, 1, 0])   # boundaries pass the gradient
    np.testing.assert_array_equal(glo.numpy(), w * [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ghi.numpy(), w * [0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="clip: give lo, hi or both"):
        ops.clip(f64(x))
    with pytest.raises(ShapeError, match=r"clip: cannot broadcast \[5\] with \[2\] with \[\]"):
        ops.clip(f64(x), f64([0.0, 1.0]), 2.0)


@pytest.mark.parametrize("name, ref", [("floor", np.floor), ("round", np.round), ("ceil", np.ceil)])
def test_rounding_values_and_zero_gradient(name, ref):
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.3, -0.7])  # round: halves go to even
    op = getattr(ops, name)
    np.testing.assert_array_equal(op(f64(x)).numpy(), ref(x))
    (g,), _ = grad(op, x)
    assert g is not None  # a zero rule, not an unconnected gradient
    np.testing.assert_array_equal(g.numpy(), np.zeros_like(x))


# ---- second order: nested tapes against torch.autograd -------------------------------
SECOND = [
    ("getitem-advanced", lambda x: x[[0, 0, 2], ::-1] ** 2, lambda x: x[[0, 0, 2]].flip(1) ** 2, (3, 4)),
    ("getitem-mask", lambda x: tc.ops.tanh(x[M[:, :2]]), lambda x: torch.tanh(x[torch.tensor(M[:, :2])]),
     (3, 2)),
    ("embedding", lambda t: ops.embedding_lookup(t, tc.tensor([1, 1, 0])) ** 3,
     lambda t: TF.embedding(torch.tensor([1, 1, 0]), t) ** 3, (2, 3)),
    ("pad-reflect", lambda x: ops.pad(x, [[1, 2], [2, 1]], "reflect") ** 2,
     lambda x: TF.pad(x[None], (2, 1, 1, 2), mode="reflect")[0] ** 2, (3, 4)),
    ("pad-constant", lambda x: ops.sigmoid(ops.pad(x, [[1, 0], [0, 2]], constant_values=1.0)),
     lambda x: torch.sigmoid(TF.pad(x, (0, 2, 1, 0), value=1.0)), (2, 2)),
    ("cumsum-excl-rev", lambda x: ops.cumsum(x, 1, exclusive=True, reverse=True) ** 2,
     lambda x: (x.flip(1).cumsum(1) - x.flip(1)).flip(1) ** 2, (2, 4)),
    ("einsum-bilinear", lambda a, b: ops.tanh(ops.einsum("bi,ij,bj->b", a, b, a)),
     lambda a, b: torch.tanh(torch.einsum("bi,ij,bj->b", a, b, a)), (2, 3), (3, 3)),
    ("einsum-diagonal", lambda a: ops.einsum("iij->j", a) ** 2,
     lambda a: torch.einsum("iij->j", a) ** 2, (2, 2, 3)),
    ("flip-tile-repeat", lambda x: ops.repeat(ops.tile(ops.flip(x, 0), (1, 2)), [1, 2], axis=0) ** 2,
     lambda x: torch.repeat_interleave(torch.tile(x.flip(0), (1, 2)), torch.tensor([1, 2]), 0) ** 2,
     (2, 3)),
    ("scatter_add", lambda x, u: ops.scatter_add(x, tc.tensor([[1], [0]]), u, 1) ** 2,
     lambda x, u: x.scatter_add(1, torch.tensor([[1], [0]]), u) ** 2, (2, 3), (2, 1)),
    ("clip-top_k", lambda x: ops.top_k(ops.clip(x, -0.8, 0.8) ** 3, 2)[0],
     lambda x: torch.topk(torch.clamp(x, -0.8, 0.8) ** 3, 2).values, (2, 4)),
]


@pytest.mark.parametrize("case", SECOND, ids=[c[0] for c in SECOND])
def test_hessian_vector_product_matches_torch(case):
    name, fn, ref, *shapes = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = [rng.uniform(-1.5, 1.5, s) for s in shapes]
    vs = [rng.uniform(-1, 1, s) for s in shapes]
    w = rng.uniform(-1, 1, tuple(ref(*[torch.from_numpy(x) for x in xs]).shape))

    ts = [f64(x) for x in xs]
    with tc.GradientTape() as outer:
        outer.watch(ts)
        with tc.GradientTape() as inner:
            inner.watch(ts)
            loss = ops.sum(fn(*ts) * f64(w))
        gs = inner.gradient(loss, ts)
        s = sum(ops.sum(g * f64(v)) for g, v in zip(gs, vs))
    hv = outer.gradient(s, ts)

    tt = [torch.tensor(x, requires_grad=True) for x in xs]
    tgs = torch.autograd.grad((ref(*tt) * torch.from_numpy(w)).sum(), tt, create_graph=True)
    thv = torch.autograd.grad(sum((g * torch.from_numpy(v)).sum() for g, v in zip(tgs, vs)), tt)
    for g, tg, h, th in zip(gs, tgs, hv, thv):
        np.testing.assert_allclose(g.numpy(), tg.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-10, atol=1e-12)


def test_tensor_methods_are_the_ops():
    x = f64(np.arange(6.0).reshape(1, 2, 3))
    np.testing.assert_array_equal(x.flip(-1).numpy(), np.flip(x.numpy(), -1))
    assert x.squeeze().shape == (2, 3)
    np.testing.assert_array_equal(x.clip(1.0, 4.0).numpy(), np.clip(x.numpy(), 1, 4))
    np.testing.assert_array_equal(x.cumsum(2).numpy(), np.cumsum(x.numpy(), 2))
