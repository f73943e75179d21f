"""Gradcheck rows of the convolution and pooling family (float64, NCHW / NCL).

References are torch.nn.functional kernels on EXPLICITLY padded inputs: every pad below
is a literal worked out by hand from TensorFlow's 'same' rule
(total = max((ceil(n/s) - 1)·s + (k-1)·d + 1 - n, 0), before = total // 2), written in
F.pad order (left, right, top, bottom); transposed references crop the full
conv_transpose2d output by hand. Max-pool inputs are distinct (no ties); max_pool2d_grad/max_pool2d_gather are checked
against torch.autograd's own max-pool gradient and its double backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as TF

import trainctl as tc
from gradcheck_harness import STD, distinct, row

NEG = -math.inf


# ---- conv2d: (id, x, kernel, attrs, F.pad of the input, torch stride, dilation, groups) --
CONV2D = [
    ("valid", (2, 2, 4, 4), (3, 2, 3, 3), {}, (0, 0, 0, 0), 1, 1, 1),
    ("same-s2-even", (1, 2, 6, 6), (3, 2, 3, 3), dict(strides=2, padding="same"),
     (0, 1, 0, 1), 2, 1, 1),
    ("same-d2", (1, 2, 5, 5), (2, 2, 3, 3), dict(padding="same", dilation=2),
     (2, 2, 2, 2), 1, 2, 1),
    ("same-groups2-s21", (1, 4, 5, 6), (6, 2, 3, 2),
     dict(strides=(2, 1), padding="same", groups=2), (0, 1, 1, 1), (2, 1), 1, 2),
    ("p1-s2-d12", (1, 2, 6, 5), (2, 2, 2, 3), dict(strides=2, padding=1, dilation=(1, 2)),
     (1, 1, 1, 1), 2, (1, 2), 1),
    ("p20", (1, 1, 4, 4), (1, 1, 3, 3), dict(padding=(2, 0)), (0, 0, 2, 2), 1, 1, 1),
    ("same-even-kernel", (1, 1, 5, 5), (2, 1, 2, 2), dict(padding="SAME"),
     (0, 1, 0, 1), 1, 1, 1),
    ("depthwise-s2", (2, 3, 5, 5), (3, 1, 2, 2), dict(strides=2, groups=3),
     (0, 0, 0, 0), 2, 1, 3),
    ("same-s3-k2", (1, 1, 7, 5), (1, 1, 2, 2), dict(strides=3, padding="same"),
     (0, 0, 0, 1), 3, 1, 1),
]
for _id, _x, _k, _attrs, _pad, _s, _d, _g in CONV2D:
    row(f"conv2d-{_id}",
        lambda x, k, _a=_attrs: tc.ops.conv2d(x, k, **_a),
        lambda x, k, _p=_pad, _s=_s, _d=_d, _g=_g: TF.conv2d(TF.pad(x, _p), k, None, _s, 0, _d, _g),
        (_x, STD), (_k, STD))

# ---- conv2d_transpose: reference = full torch conv_transpose2d, then a crop by hand --------
# (id, x, kernel, attrs, torch kwargs, crop rows, crop cols)
TRANSPOSE = [
    ("valid-s2", (1, 3, 3, 3), (3, 2, 3, 3), dict(strides=2), dict(stride=2), None, None),
    ("same-s2", (1, 2, 3, 3), (2, 3, 3, 3), dict(strides=2, padding="same"), dict(stride=2),
     (0, 6), (0, 6)),
    ("same-s2-k4-groups2", (1, 4, 2, 3), (4, 1, 4, 4), dict(strides=2, padding="same", groups=2),
     dict(stride=2, groups=2), (1, 5), (1, 7)),
    ("valid-s3-k2-keras", (1, 2, 2, 3), (2, 2, 2, 2), dict(strides=3),
     dict(stride=3, output_padding=1), None, None),
    ("p1-d2-output_shape", (1, 2, 3, 3), (2, 1, 3, 3),
     dict(strides=2, padding=1, dilation=2, output_shape=(8, 7)),
     dict(stride=2, padding=1, dilation=2, output_padding=(1, 0)), None, None),
    ("same-d2-rect", (1, 1, 4, 4), (1, 2, 2, 3), dict(padding="same", dilation=2),
     dict(dilation=2), (1, 5), (2, 6)),
    ("same-s23-asym", (1, 1, 2, 2), (1, 1, 3, 3), dict(strides=(2, 3), padding="same"),
     dict(stride=(2, 3)), (0, 4), (0, 6)),
    ("same-s2-k5-before1", (1, 1, 2, 2), (1, 1, 5, 5), dict(strides=2, padding="same"),
     dict(stride=2), (1, 5), (1, 5)),
]


def _transpose_ref(kw, rows, cols):
    def ref(x, k):
        y = TF.conv_transpose2d(x, k, **kw)
        return y if rows is None else y[..., rows[0]:rows[1], cols[0]:cols[1]]
    return ref


for _id, _x, _k, _attrs, _kw, _r, _c in TRANSPOSE:
    row(f"conv2d_transpose-{_id}", lambda x, k, _a=_attrs: tc.ops.conv2d_transpose(x, k, **_a),
        _transpose_ref(_kw, _r, _c), (_x, STD), (_k, STD))


# ---- conv2d_weight_grad: reference = torch.autograd's kernel gradient (create_graph) -----
def _weight_grad_ref(k_shape, pad, stride, dilation, groups):
    def ref(x, g):
        w0 = torch.zeros(k_shape, dtype=x.dtype, requires_grad=True)
        y = TF.conv2d(TF.pad(x, pad), w0, None, stride, 0, dilation, groups)
        return torch.autograd.grad(y, w0, g, create_graph=True)[0]
    return ref


WEIGHT_GRAD = [  # (id, x, g, kernel shape, attrs, F.pad, stride, dilation, groups)
    ("valid", (2, 2, 4, 4), (2, 3, 2, 2), (3, 2, 3, 3), {}, (0, 0, 0, 0), 1, 1, 1),
    ("same-s2-even", (1, 2, 4, 4), (1, 2, 2, 2), (2, 2, 3, 3), dict(strides=2, padding="same"),
     (0, 1, 0, 1), 2, 1, 1),
    ("p1-d2-groups2", (1, 4, 5, 5), (1, 2, 5, 5), (2, 2, 2, 2),
     dict(padding=1, dilation=2, groups=2), (1, 1, 1, 1), 1, 2, 2),
]
for _id, _x, _gs, _ks, _attrs, _pad, _s, _d, _g in WEIGHT_GRAD:
    row(f"conv2d_weight_grad-{_id}",
        lambda x, g, _ks=_ks, _a=_attrs: tc.ops.conv2d_weight_grad(x, g, _ks[2:], **_a),
        _weight_grad_ref(_ks, _pad, _s, _d, _g), (_x, STD), (_gs, STD))

# ---- conv1d (composed over conv2d) --------------------------------------------------------
row("conv1d-same-s2", lambda x, k: tc.ops.conv1d(x, k, strides=2, padding="same"),
    lambda x, k: TF.conv1d(TF.pad(x, (1, 1)), k, None, 2), ((2, 2, 7), STD), ((3, 2, 3), STD))
row("conv1d-same-s2-groups2-asym", lambda x, k: tc.ops.conv1d(x, k, 2, "same", groups=2),
    lambda x, k: TF.conv1d(TF.pad(x, (0, 1)), k, None, 2, groups=2),
    ((1, 4, 6), STD), ((4, 2, 3), STD))
row("conv1d-p2-d2", lambda x, k: tc.ops.conv1d(x, k, padding=2, dilation=2),
    lambda x, k: TF.conv1d(x, k, None, 1, 2, 2), ((1, 2, 5), STD), ((1, 2, 3), STD))
row("conv2d-bias-tanh", lambda x, k, b: tc.ops.tanh(
    tc.ops.conv2d(x, k, padding="same") + tc.ops.reshape(b, (1, 2, 1, 1))),
    lambda x, k, b: torch.tanh(TF.conv2d(TF.pad(x, (1, 1, 1, 1)), k) + b.reshape(1, 2, 1, 1)),
    ((1, 2, 4, 4), STD), ((2, 2, 3, 3), STD), ((2,), STD))

row("conv2d_bias-same-s2", lambda x, k, b: tc.ops.conv2d_bias(x, k, b, strides=2, padding="same"),
    lambda x, k, b: TF.conv2d(TF.pad(x, (1, 1, 1, 1)), k, b, 2),
    ((1, 2, 5, 5), STD), ((3, 2, 3, 3), STD), ((3,), STD))
row("conv2d_bias-p1-groups2", lambda x, k, b: tc.ops.conv2d_bias(x, k, b, padding=1, groups=2),
    lambda x, k, b: TF.conv2d(x, k, b, 1, 1, 1, 2), ((2, 4, 4, 4), STD), ((2, 2, 3, 3), STD),
    ((2,), STD))

# ---- unfold2d / fold2d ---------------------------------------------------------------------
row("unfold2d-k2-s2", lambda x: tc.ops.unfold2d(x, 2, strides=2),
    lambda x: TF.unfold(x, 2, stride=2), ((1, 2, 4, 4), STD))
row("unfold2d-same-s21", lambda x: tc.ops.unfold2d(x, (3, 2), strides=(2, 1), padding="same"),
    lambda x: TF.unfold(TF.pad(x, (0, 1, 1, 1)), (3, 2), stride=(2, 1)), ((1, 1, 5, 4), STD))
row("unfold2d-p1-d2", lambda x: tc.ops.unfold2d(x, 2, padding=1, dilation=2),
    lambda x: TF.unfold(x, 2, dilation=2, padding=1), ((1, 1, 4, 4), STD))
row("fold2d-k2-s2", lambda p: tc.ops.fold2d(p, (4, 4), 2, strides=2),
    lambda p: TF.fold(p, (4, 4), 2, stride=2), ((1, 8, 4), STD))
row("fold2d-same-s21", lambda p: tc.ops.fold2d(p, (5, 4), (3, 2), strides=(2, 1), padding="same"),
    lambda p: TF.fold(p, (7, 5), (3, 2), stride=(2, 1))[..., 1:6, 0:4], ((1, 6, 12), STD))
row("fold2d-overlap", lambda p: tc.ops.fold2d(p, (4, 4), 3),
    lambda p: TF.fold(p, (4, 4), 3), ((2, 9, 4), STD))

# ---- max_pool2d (distinct inputs: no ties) -------------------------------------------------
row("max_pool2d-valid", lambda x: tc.ops.max_pool2d(x, 2),
    lambda x: TF.max_pool2d(x, 2), ((2, 2, 4, 4), distinct()))
row("max_pool2d-same-s2", lambda x: tc.ops.max_pool2d(x, 2, padding="same"),
    lambda x: TF.max_pool2d(TF.pad(x, (0, 1, 0, 1), value=NEG), 2), ((1, 2, 5, 5), distinct()))
row("max_pool2d-same-overlap", lambda x: tc.ops.max_pool2d(x, 3, strides=1, padding="same"),
    lambda x: TF.max_pool2d(TF.pad(x, (1, 1, 1, 1), value=NEG), 3, 1), ((1, 1, 5, 6), distinct()))
row("max_pool2d-same-rect", lambda x: tc.ops.max_pool2d(x, (3, 2), strides=2, padding="same"),
    lambda x: TF.max_pool2d(TF.pad(x, (0, 0, 0, 1), value=NEG), (3, 2), 2),
    ((1, 1, 6, 4), distinct()))
row("max_pool2d-p1-s2", lambda x: tc.ops.max_pool2d(x, 3, strides=2, padding=1),
    lambda x: TF.max_pool2d(x, 3, 2, padding=1), ((1, 1, 4, 4), distinct()))

# ---- max_pool2d_grad / max_pool2d_gather: references = torch.autograd's max-pool gradient
# (create_graph) and its derivative in the upstream gradient (torch's double backward) ------
def _pool_grad_ref(pad, *args):
    def ref(g, x):
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        xp = TF.pad(x, pad, value=NEG) if pad else x
        return torch.autograd.grad(TF.max_pool2d(xp, *args), x, g, create_graph=True)[0]
    return ref


def _gather_ref(pad, *args):
    def ref(h, x):
        xp = TF.pad(x, pad, value=NEG) if pad else x
        g0 = torch.zeros(TF.max_pool2d(xp.detach(), *args).shape, dtype=x.dtype,
                         requires_grad=True)
        gx = _pool_grad_ref(pad, *args)(g0, x)
        return torch.autograd.grad((gx * h).sum(), g0, create_graph=True)[0]
    return ref


row("max_pool2d_grad-valid", lambda g, x: tc.ops.max_pool2d_grad(g, x, 2),
    _pool_grad_ref(None, 2), ((2, 2, 2, 2), STD), ((2, 2, 4, 4), distinct()))
row("max_pool2d_grad-same-overlap",
    lambda g, x: tc.ops.max_pool2d_grad(g, x, 3, strides=1, padding="same"),
    _pool_grad_ref((1, 1, 1, 1), 3, 1), ((1, 1, 5, 6), STD), ((1, 1, 5, 6), distinct()))
row("max_pool2d_gather-same-s2",
    lambda h, x: tc.ops.max_pool2d_gather(h, x, 2, padding="same"),
    _gather_ref((0, 1, 0, 1), 2), ((1, 2, 5, 5), STD), ((1, 2, 5, 5), distinct()))

# ---- avg_pool2d: divides by the real cells of each window (counts worked out by hand) -------
_C3 = torch.tensor([[4.0, 4, 2], [4, 4, 2], [2, 2, 1]], dtype=torch.float64)
_C4 = torch.tensor([2.0, 2, 2, 1], dtype=torch.float64)[:, None] * torch.tensor(
    [2.0, 3, 2], dtype=torch.float64)
row("avg_pool2d-valid", lambda x: tc.ops.avg_pool2d(x, 2),
    lambda x: TF.avg_pool2d(x, 2), ((2, 2, 4, 4), STD))
row("avg_pool2d-same-sym", lambda x: tc.ops.avg_pool2d(x, 3, strides=1, padding="same"),
    lambda x: TF.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False), ((1, 2, 5, 5), STD))
row("avg_pool2d-same-s2-asym", lambda x: tc.ops.avg_pool2d(x, 2, padding="same"),
    lambda x: TF.avg_pool2d(TF.pad(x, (0, 1, 0, 1)), 2, divisor_override=1) / _C3,
    ((1, 2, 5, 5), STD))
row("avg_pool2d-same-overlap-rect",
    lambda x: tc.ops.avg_pool2d(x, (2, 3), strides=(1, 2), padding="same"),
    lambda x: TF.avg_pool2d(TF.pad(x, (1, 1, 0, 1)), (2, 3), (1, 2), divisor_override=1) / _C4,
    ((1, 1, 4, 5), STD))

# ---- global pools (composed) ---------------------------------------------------------------
row("global_average_pool2d", tc.ops.global_average_pool2d, lambda x: x.mean((2, 3)),
    ((2, 3, 3, 4), STD))
row("global_max_pool2d-keepdims", lambda x: tc.ops.global_max_pool2d(x, keepdims=True),
    lambda x: x.amax((2, 3), keepdim=True), ((2, 3, 3, 4), distinct()))
row("conv-pool-stack", lambda x, k: tc.ops.max_pool2d(tc.ops.tanh(
    tc.ops.conv2d(x, k, strides=1, padding="same")), 2, padding="same"),
    lambda x, k: TF.max_pool2d(TF.pad(torch.tanh(TF.conv2d(TF.pad(x, (1, 1, 1, 1)), k)),
                                      (0, 1, 0, 1), value=NEG), 2),
    ((1, 1, 5, 5), STD), ((2, 1, 3, 3), STD))
