"""Gradcheck rows of the normalisation family: variance, std, rsqrt, moments, batch_norm,
layer_norm (float64; references torch.var/std with ``correction``, F.batch_norm in
training mode, F.layer_norm)."""

from __future__ import annotations

import torch
import torch.nn.functional as TF

import trainctl as tc
from gradcheck_harness import POS, STD, row, shp

EPSILON = 1e-3  # Keras' default for batch and layer normalisation

# ---- variance and std --------------------------------------------------------------------
_STAT_CASES = [((5,), None, False, 0), ((5,), None, False, 1), ((2, 3, 4), 1, False, 0),
               ((2, 3, 4), (0, 2), True, 1), ((2, 3, 4), -1, True, 0), ((3, 4), 0, False, 1)]
for _name, _op, _ref in [("variance", tc.ops.variance, torch.var), ("std", tc.ops.std, torch.std)]:
    for _shape, _axis, _keep, _ddof in _STAT_CASES:
        _dims = tuple(range(len(_shape))) if _axis is None else _axis
        row(f"{_name}-{shp(_shape)}-axis{_axis}-keep{int(_keep)}-ddof{_ddof}",
            lambda x, _op=_op, _a=_axis, _k=_keep, _d=_ddof: _op(x, axis=_a, keepdims=_k, ddof=_d),
            lambda x, _r=_ref, _a=_dims, _k=_keep, _d=_ddof:
            _r(x, dim=_a, keepdim=_k, correction=_d),
            (_shape, STD))
row("std-positional-axis", lambda x: tc.ops.std(x, 0), lambda x: x.std(0, correction=0),
    ((3, 2), STD))
row("moments-mean-plus-variance", lambda x: sum(tc.ops.moments(x, axis=0)),
    lambda x: x.mean(0) + x.var(0, correction=0), ((4, 3), STD))

for _shape in [(), (2, 3)]:
    row(f"rsqrt-{shp(_shape)}", tc.ops.rsqrt, torch.rsqrt, (_shape, POS))


# ---- batch_norm (training mode: batch statistics) -----------------------------------------
def _tbn(x, gamma, beta):
    """F.batch_norm in training mode; channels on axis 1."""
    return TF.batch_norm(x, None, None, gamma, beta, training=True, eps=EPSILON)


row("batch_norm-4x3-axis-1", lambda x, g, b: tc.ops.batch_norm(x, g, b),
    _tbn, ((4, 3), STD), ((3,), STD), ((3,), STD))
row("batch_norm-nchw-2x3x2x2-axis1", lambda x, g, b: tc.ops.batch_norm(x, g, b, axis=1),
    _tbn, ((2, 3, 2, 2), STD), ((3,), STD), ((3,), STD))
row("batch_norm-nhwc-2x2x2x3-axis-1", lambda x, g, b: tc.ops.batch_norm(x, g, b, axis=-1),
    lambda x, g, b: _tbn(x.permute(0, 3, 1, 2), g, b).permute(0, 2, 3, 1),
    ((2, 2, 2, 3), STD), ((3,), STD), ((3,), STD))
row("batch_norm-no-params-5x2", lambda x: tc.ops.batch_norm(x, epsilon=0.1),
    lambda x: TF.batch_norm(x, None, None, training=True, eps=0.1), ((5, 2), STD))
# .contiguous(): torch's CPU batch_norm backward gives wrong input gradients for a
# stride-0 (expanded) weight
row("batch_norm-scalar-params", lambda x, g, b: tc.ops.batch_norm(x, g, b),
    lambda x, g, b: _tbn(x, g.expand(2).contiguous(), b.expand(2).contiguous()),
    ((3, 2), STD), ((), STD), ((), STD))


# ---- layer_norm -------------------------------------------------------------------------
def _tln(axes_shape):
    return lambda x, g, b: TF.layer_norm(x, axes_shape, g, b, eps=EPSILON)


row("layer_norm-3x5-axes-1", lambda x, g, b: tc.ops.layer_norm(x, g, b),
    _tln((5,)), ((3, 5), STD), ((5,), STD), ((5,), STD))
row("layer_norm-2x3x4-axes12", lambda x, g, b: tc.ops.layer_norm(x, g, b, axes=(1, 2)),
    _tln((3, 4)), ((2, 3, 4), STD), ((3, 4), STD), ((3, 4), STD))
row("layer_norm-2x3x4-axes1-middle", lambda x, g, b: tc.ops.layer_norm(x, g, b, axes=1),
    lambda x, g, b: _tln((3,))(x.transpose(1, 2), g, b).transpose(1, 2),
    ((2, 3, 4), STD), ((3,), STD), ((3,), STD))
row("layer_norm-no-params-2x4", lambda x: tc.ops.layer_norm(x, epsilon=1e-5),
    lambda x: TF.layer_norm(x, (4,), eps=1e-5), ((2, 4), STD))
