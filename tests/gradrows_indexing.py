"""Gradcheck rows of the indexing family (float64; references: torch advanced indexing,
F.embedding, scatter_add, torch.topk, torch.flip, F.pad, torch.tile, repeat_interleave,
torch.cumsum, torch.einsum, torch.clamp, torch.floor/round/ceil).

Index arrays are constants captured by the rows; repeated indices check that the
gradient accumulates. Where numpy's indexing differs from torch's (an int and an index
array separated by a slice), the torch reference is written to numpy's meaning.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

import trainctl as tc
from gradcheck_harness import STD, distinct, row, uniform

F64 = torch.float64
T = torch.tensor
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, False]])


# ---- getitem: negative steps, integer arrays, boolean masks, mixes ----------------------
GETITEM = {
    "reverse": (np.s_[::-1], lambda x: x.flip(0)),
    "3:0:-2": (np.s_[3:0:-2], lambda x: x[[3, 1]]),
    "neg-step-both-axes": (np.s_[-1:0:-2, ::-3], lambda x: x[[4, 2]][:, [3, 0]]),
    "ellipsis-neg-step-int": (np.s_[..., 2::-1, 1], lambda x: x[:, [2, 1, 0], 1]),
    "int-list-repeats": (np.s_[[1, 1, 3]], lambda x: x[[1, 1, 3]]),
    "numpy-2d-int-array": (np.s_[np.array([[0, 4], [4, 4]])], lambda x: x[T([[0, 4], [4, 4]])]),
    "tensor-int-index": (tc.tensor([2, 0, 2]), lambda x: x[T([2, 0, 2])]),
    "negative-int-index": (np.s_[[-1, 0, -1]], lambda x: x[[4, 0, 4]]),
    "two-arrays-broadcast": (np.s_[[[0], [2]], [1, 1, 3]], lambda x: x[T([[0], [2]]), T([1, 1, 3])]),
    "array-slice-array": (np.s_[[0, 2, 2], :, [1, 1, 0]], lambda x: x[[0, 2, 2], :, [1, 1, 0]]),
    # numpy: the int joins the advanced indices; separated by a slice, their axis goes first
    "int-slice-array": (np.s_[1, :, [0, 2, 2]], lambda x: x[1, :, [0, 2, 2]].T),
    "slice-array-neg-step": (np.s_[1:, [3, 0, 3], ::-1], lambda x: x[1:, [3, 0, 3]].flip(-1)),
    "numpy-bool-mask": (MASK, lambda x: x[T(MASK)]),
    "tensor-bool-mask-axis1": (np.s_[:, tc.tensor([True, False, False, True])],
                               lambda x: x[:, T([True, False, False, True])]),
    "bool-mask-then-int": (np.s_[np.array([True, False, True]), 2], lambda x: x[T([0, 2]), 2]),
    "none-array-ellipsis": (np.s_[None, [1, 1], ...], lambda x: x[None, [1, 1]]),
}
SHAPES = {"reverse": (4, 3), "3:0:-2": (5, 2), "neg-step-both-axes": (5, 4),
          "ellipsis-neg-step-int": (2, 4, 3), "int-list-repeats": (4, 3),
          "numpy-2d-int-array": (5, 2), "tensor-int-index": (3, 2), "negative-int-index": (5, 2),
          "two-arrays-broadcast": (3, 4), "array-slice-array": (3, 2, 2),
          "int-slice-array": (2, 4, 3), "slice-array-neg-step": (3, 4, 3),
          "numpy-bool-mask": (3, 4), "tensor-bool-mask-axis1": (3, 4),
          "bool-mask-then-int": (3, 4), "none-array-ellipsis": (2, 3)}
for _name, (_key, _ref) in GETITEM.items():
    row(f"getitem-{_name}", lambda x, _key=_key: x[_key], _ref, (SHAPES[_name], STD))
row("getitem-op-mask-tensor", lambda x: tc.ops.getitem(x, key=tc.tensor(MASK[0])),
    lambda x: x[T(MASK[0])], ((4, 2), STD))
row("getitem_adjoint-repeats-accumulate",
    lambda g: tc.ops.getitem_adjoint(g, key=[[2, 0, 2, 2]], shape=(3, 2)),
    lambda g: torch.zeros(3, 2, dtype=F64).index_put((T([2, 0, 2, 2]),), g, accumulate=True),
    ((4, 2), STD))
row("getitem_adjoint-neg-step", lambda g: tc.ops.getitem_adjoint(g, key=np.s_[::-2], shape=(5,)),
    lambda g: torch.zeros(5, dtype=F64).index_put((T([4, 2, 0]),), g), ((3,), STD))

# ---- lookups and scatters ----------------------------------------------------------------
for _name, _ids in [("repeated-1-1-3", [1, 1, 3]), ("2d", [[0, 2], [2, 2], [3, 1]]),
                    ("0d", 2)]:
    row(f"embedding_lookup-{_name}", lambda t, _ids=_ids: tc.ops.embedding_lookup(t, tc.tensor(_ids)),
        lambda t, _ids=_ids: TF.embedding(T(_ids), t), ((4, 3), STD))
_SIDX = [[0, 0, 2], [1, 3, 1]]
row("scatter_add-axis1-repeats", lambda x, u: tc.ops.scatter_add(x, tc.tensor(_SIDX), u, axis=1),
    lambda x, u: x.scatter_add(1, T(_SIDX), u), ((2, 4), STD), ((2, 3), STD))
row("scatter_add-axis0", lambda x, u: tc.ops.scatter_add(x, [[1, 0], [1, 1]], u, 0),
    lambda x, u: x.scatter_add(0, T([[1, 0], [1, 1]]), u), ((3, 2), STD), ((2, 2), STD))
for _k in [1, 3]:
    row(f"top_k-values-k{_k}", lambda x, _k=_k: tc.ops.top_k(x, _k)[0],
        lambda x, _k=_k: torch.topk(x, _k).values, ((2, 5), distinct()))

# ---- flip, pad, split, squeeze ---------------------------------------------------------
for _axis, _dims in [(0, 0), (-1, -1), ((0, 2), (0, 2)), (None, (0, 1, 2))]:
    row(f"flip-axis{_axis}", lambda x, _axis=_axis: tc.ops.flip(x, _axis),
        lambda x, _dims=_dims: x.flip(_dims), ((2, 3, 4), STD))
row("flip-method", lambda x: x.flip(1), lambda x: x.flip(1), ((2, 3), STD))


def _mirror(x, pads, shift):
    """Reflect (shift 1) or symmetric (shift 0) padding, written with narrow and flip."""
    for ax, (b, a) in enumerate(pads):
        n = x.shape[ax]
        x = torch.cat([x.narrow(ax, shift, b).flip(ax), x,
                       x.narrow(ax, n - shift - a, a).flip(ax)], ax)
    return x


row("pad-constant-2d", lambda x: tc.ops.pad(x, [[1, 0], [2, 3]], constant_values=0.5),
    lambda x: TF.pad(x, (2, 3, 1, 0), value=0.5), ((2, 3), STD))
row("pad-constant-3d-zero-axis", lambda x: tc.ops.pad(x, [[0, 0], [1, 1], [0, 2]]),
    lambda x: TF.pad(x, (0, 2, 1, 1)), ((2, 2, 3), STD))
row("pad-reflect-F", lambda x: tc.ops.pad(x, [[0, 0], [0, 0], [2, 1]], mode="REFLECT"),
    lambda x: TF.pad(x, (2, 1), mode="reflect"), ((2, 2, 4), STD))
row("pad-reflect-2d", lambda x: tc.ops.pad(x, [[2, 1], [1, 2]], mode="reflect"),
    lambda x: _mirror(x, [(2, 1), (1, 2)], 1), ((3, 4), STD))
row("pad-symmetric-2d", lambda x: tc.ops.pad(x, [[3, 1], [0, 2]], mode="symmetric"),
    lambda x: _mirror(x, [(3, 1), (0, 2)], 0), ((3, 2), STD))
row("split-sizes-axis1", lambda x: tc.ops.concat(*[p * (i + 1.0) for i, p in enumerate(
    tc.ops.split(x, [1, -1, 2], axis=1))], axis=1),
    lambda x: torch.cat([p * (i + 1.0) for i, p in enumerate(torch.split(x, [1, 2, 2], 1))], 1),
    ((2, 5), STD))
row("split-equal-axis0", lambda x: tc.ops.split(x, 3)[1] * tc.ops.split(x, 3)[2],
    lambda x: torch.split(x, 1)[1] * torch.split(x, 1)[2], ((3, 2), STD))
row("squeeze-all", tc.ops.squeeze, torch.squeeze, ((1, 3, 1, 2), STD))
row("squeeze-axis-method", lambda x: x.squeeze(-2), lambda x: x.squeeze(-2), ((1, 3, 1, 2), STD))
row("unsqueeze", lambda x: tc.ops.unsqueeze(x, 1), lambda x: x.unsqueeze(1), ((2, 3), STD))

# ---- tile, repeat, cumsum ---------------------------------------------------------------
for _shape, _reps in [((2, 3), (2, 1)), ((2, 3), (3,)), ((3,), (2, 2)), ((2, 1, 3), (1, 2, 2))]:
    row(f"tile-{_shape}-{_reps}", lambda x, _reps=_reps: tc.ops.tile(x, _reps),
        lambda x, _reps=_reps: torch.tile(x, _reps), (_shape, STD))
row("repeat-int-axis1", lambda x: tc.ops.repeat(x, 2, axis=1),
    lambda x: torch.repeat_interleave(x, 2, dim=1), ((2, 3), STD))
row("repeat-counts-axis0", lambda x: tc.ops.repeat(x, [2, 0, 3], axis=0),
    lambda x: torch.repeat_interleave(x, T([2, 0, 3]), dim=0), ((3, 2), STD))
row("repeat-flatten", lambda x: tc.ops.repeat(x, 3), lambda x: torch.repeat_interleave(x, 3),
    ((2, 2), STD))


def _torch_cumsum(x, axis, exclusive, reverse):
    y = x.flip(axis) if reverse else x
    c = torch.cumsum(y, axis) - (y if exclusive else 0)
    return c.flip(axis) if reverse else c


for _excl in (False, True):
    for _rev in (False, True):
        for _shape, _axis in [((5,), 0), ((2, 4), 1), ((3, 2, 2), -3)]:
            row(f"cumsum-{_shape}-axis{_axis}-excl{int(_excl)}-rev{int(_rev)}",
                lambda x, _a=_axis, _e=_excl, _r=_rev: tc.ops.cumsum(x, _a, exclusive=_e, reverse=_r),
                lambda x, _a=_axis, _e=_excl, _r=_rev: _torch_cumsum(x, _a, _e, _r), (_shape, STD))
row("cumsum-method", lambda x: x.cumsum(1), lambda x: x.cumsum(1), ((2, 3), STD))

# ---- einsum ------------------------------------------------------------------------------
EINSUM = [
    ("matmul", "ij,jk->ik", [(2, 3), (3, 4)]),
    ("batched-matmul", "bij,bjk->bik", [(2, 2, 3), (2, 3, 2)]),
    ("outer", "i,j->ij", [(3,), (2,)]),
    ("transpose", "ijk->kij", [(2, 3, 4)]),
    ("implicit-transpose", "ba", [(2, 3)]),
    ("sum-axis", "ij->i", [(2, 3)]),
    ("total", "ij->", [(2, 3)]),
    ("dot-implicit", "i,i", [(4,), (4,)]),
    ("three-operands", "ij,jk,kl->il", [(2, 3), (3, 2), (2, 2)]),
    ("bilinear", "bi,ij,bj->b", [(3, 2), (2, 4), (3, 4)]),
    ("contract-last", "ab,cb->ac", [(2, 3), (4, 3)]),
    ("ellipsis-batched", "...ij,...jk->...ik", [(2, 2, 3), (3, 2)]),
    ("ellipsis-broadcast-1", "...i,...i->...", [(2, 1, 3), (4, 3)]),
    ("diagonal", "ii->i", [(3, 3)]),
    ("trace", "ii", [(3, 3)]),
    ("diag-times-vector", "iij,j->i", [(2, 2, 3), (3,)]),
]
for _name, _eq, _shapes in EINSUM:
    row(f"einsum-{_name}", lambda *xs, _eq=_eq: tc.ops.einsum(_eq, *xs),
        lambda *xs, _eq=_eq: torch.einsum(_eq, *xs), *[(s, STD) for s in _shapes])

# ---- clip and rounding -------------------------------------------------------------------
row("clip-numbers", lambda x: tc.ops.clip(x, -0.5, 0.7), lambda x: torch.clamp(x, -0.5, 0.7),
    ((3, 4), STD))
row("clip-tensors-broadcast", tc.ops.clip, lambda x, lo, hi: torch.clamp(x, lo, hi),
    ((2, 3), STD), ((3,), uniform(-1.2, -0.2)), ((2, 1), uniform(0.2, 1.2)))
row("clip-lo-only-method", lambda x: x.clip(0.1), lambda x: torch.clamp(x, min=0.1), ((4,), STD))
row("clip-hi-only", lambda x, hi: tc.ops.clip(x, hi=hi), lambda x, hi: torch.clamp(x, max=hi),
    ((2, 3), STD), ((), uniform(-0.5, 0.5)))


def _off_integers(rng, shape):
    """Points 0.1 to 0.4 past an integer: floor, round and ceil are flat around them."""
    return rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.4, shape)


for _name in ("floor", "round", "ceil"):
    row(f"{_name}-chain", lambda x, _n=_name: getattr(tc.ops, _n)(x) * x + x,
        lambda x, _n=_name: getattr(torch, _n)(x) * x + x, ((2, 3), _off_integers))
