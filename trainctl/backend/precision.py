"""Mixed precision: the one place that says which dtype matmuls and convolutions compute in.

``precision:`` in a spec (or ``--precision``) names a policy:

- ``fp32``: everything in float32 (the default);
- ``tf32``: float32 tensors, but CUDA matmuls and cuDNN convolutions may use TensorFloat-32
  (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``); a
  no-op on the CPU and MPS, which have no TF32 units;
- ``bf16`` / ``fp16``: matmuls (``matmul_nd``, ``einsum``) and convolutions (``conv2d``,
  ``conv2d_transpose``, ``conv2d_weight_grad``) cast their float32 operands to bfloat16 /
  float16, compute there and give float32 back; every other op (reductions, softmax,
  normalisation, losses, the optimizer update) runs in float32. Weights and optimizer
  slots stay float32 ("master weights"). The backward pass calls the same ops, so the
  gradient matmuls compute in the low precision too, and every gradient is float32.

This is the policy of ``torch.autocast`` (matmul and convolution on its lower-precision
list, reductions, softmax, norms and losses on its float32 list, see
https://pytorch.org/docs/stable/amp.html#autocast-op-reference) applied by our own ops,
with one difference: the ops return float32 (rounded through the low dtype), so the
activations kept for the backward pass are float32. fp16 needs dynamic loss scaling
(:class:`trainctl.optim.loss_scale.DynamicLossScaler`); the trainer adds it.

The policy is a context (:func:`precision_scope`), entered by the trainer and by
evaluation; outside it ops compute in their operands' dtype.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
_LOW = {"bf16": torch.bfloat16, "fp16": torch.float16}
_compute: list[torch.dtype | None] = [None]  # the dtype of the innermost scope


def compute_dtype() -> torch.dtype | None:
    """The dtype matmuls and convolutions compute in now (None: their operands' dtype)."""
    return _compute[-1]


def low_precision(*xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``xs`` cast to the compute dtype when a bf16/fp16 scope is active and they are all
    float32; else unchanged. Used by the forwards of matmul and convolution ops."""
    dtype = _compute[-1]
    if dtype is None or any(x.dtype != torch.float32 for x in xs):
        return xs
    return tuple(x.to(dtype) for x in xs)


def back_to_float32(out: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``out`` as float32 when it was computed in the low dtype from float32 ``inputs``."""
    return out.float() if out.dtype != inputs[0].dtype else out


@contextlib.contextmanager
def precision_scope(precision: str = "fp32") -> Iterator[None]:
    """Run the block under ``precision`` (one of :data:`PRECISIONS`); restores the
    previous policy and torch's TF32 flags on exit. Raises ValueError for another name."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    _compute.append(_LOW.get(precision))
    if precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        _compute.pop()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def supported(precision: str, device: torch.device) -> str | None:
    """Why ``precision`` cannot run on ``device`` (None when it can): fp16 and bf16 need
    matmul kernels for that dtype, which this checks with a 2×2 product."""
    dtype = _LOW.get(precision)
    if dtype is None:
        return None
    try:
        a = torch.ones(2, 2, dtype=dtype, device=device)
        torch.matmul(a, a)
    except (RuntimeError, TypeError) as exc:
        return f"precision {precision} is not supported on {device}: {str(exc).splitlines()[0]}"
    return None
