"""Linear algebra: matmul (batched, numpy broadcasting of batch axes)."""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import broadcast_shape, defop, fmt_shape
from trainctl.backend.precision import back_to_float32, low_precision
from trainctl.autodiff.ops.movement import reshape, swapaxes
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError


@defop("matmul_nd", inputs=2)
def matmul_nd(a, b):
    """a @ b for operands of rank >= 2: [..., n, k] @ [..., k, m] -> [..., n, m].

    Batch axes broadcast. Raises ShapeError ``matmul: cannot multiply [3,4] by [5,6]``.
    """
    if a.dim() < 2 or b.dim() < 2 or a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: cannot multiply {fmt_shape(a.shape)} by {fmt_shape(b.shape)}")
    if (a.dim() > 2 or b.dim() > 2) and broadcast_shape(a.shape[:-2], b.shape[:-2]) is None:
        raise ShapeError(f"matmul: cannot multiply {fmt_shape(a.shape)} by {fmt_shape(b.shape)} "
                         f"(batch axes do not broadcast)")
    return back_to_float32(torch.matmul(*low_precision(a, b)), (a, b))  # precision policy


@matmul_nd.defvjp
def matmul_nd_vjp(g, out, a, b):
    ga = matmul_nd(g, swapaxes(b, -1, -2)) if a.tracked else None
    gb = matmul_nd(swapaxes(a, -1, -2), g) if b.tracked else None
    return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with numpy's rules: a 1-D operand is a row (left) or column (right)
    vector whose added axis is removed again; batch axes broadcast.

    Raises ShapeError naming both shapes when the inner dimensions differ.
    """
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: cannot multiply {fmt_shape(a.shape)} by {fmt_shape(b.shape)} "
                         f"(scalars: use mul)")
    if a.ndim >= 2 and b.ndim >= 2:
        return matmul_nd(a, b)
    if (a.shape[-1] if a.ndim else None) != (b.shape[-2] if b.ndim >= 2 else b.shape[0]):
        raise ShapeError(f"matmul: cannot multiply {fmt_shape(a.shape)} by {fmt_shape(b.shape)}")
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    out = matmul_nd(a2, b2)
    shape = out.shape
    if b.ndim == 1:
        shape = shape[:-1]
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:] if b.ndim != 1 else shape[:-1]
    return reshape(out, shape)
