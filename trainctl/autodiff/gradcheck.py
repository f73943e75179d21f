"""``tc.gradcheck``: compare our gradients with float64 central finite differences."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

from trainctl.autodiff import engine, ops
from trainctl.autodiff.ops.core import fmt_shape
from trainctl.autodiff.tape import GradientTape
from trainctl.autodiff.tensor import Tensor, to_torch


class GradcheckError(AssertionError):
    """Our Jacobian and the finite-difference Jacobian differ; the message names the input,
    the worst element and both values."""


def gradcheck(fn: Callable[..., Any], inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-4, raise_exception: bool = True) -> bool:
    """Check ``fn``'s gradients: the full Jacobian from our tape against central finite
    differences (f(x + eps) - f(x - eps)) / 2 eps, in float64.

    ``inputs``: a Tensor or a list/tuple of Tensors and array-likes (the positional
    arguments of ``fn``). Floating inputs are copied to float64 and checked; integer and
    bool inputs are passed unchanged. ``fn`` returns a floating Tensor or a list/tuple of
    them. An entry passes when |ours - fd| <= atol + rtol * |fd| (NaN never passes).
    Returns True; on a mismatch raises :class:`GradcheckError` (an AssertionError) naming
    the input index and the worst element, or returns False if not ``raise_exception``.
    Raises ValueError when no input is floating or an output is not floating.
    """
    args = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    xs = [_as_input(a) for a in args]
    checked = [i for i, x in enumerate(xs) if x.dtype.is_floating_point]
    if not checked:
        raise ValueError("gradcheck: no floating input to check")
    with GradientTape() as tape:
        tape.watch([xs[i] for i in checked])
        outs = _outputs(fn(*xs))
        flat = ops.concat(*[ops.reshape(ops.cast(o, torch.float64), (-1,)) for o in outs], axis=0)
    jac = tape.jacobian(flat, [xs[i] for i in checked], unconnected_gradients="zero")
    shapes = [o.shape for o in outs]
    for i, analytic in zip(checked, jac):
        numeric = _numeric_jacobian(fn, xs, i, eps)
        ours = analytic.data.reshape(numeric.shape)
        diff = (ours - numeric).abs()
        bound = atol + rtol * numeric.abs()
        bad = ~(diff <= bound)
        if bad.any():
            if not raise_exception:
                return False
            raise GradcheckError(_message(i, xs[i], shapes, ours, numeric, diff, bound, bad))
    return True


def _as_input(a: Any) -> Tensor:
    t = a.data if isinstance(a, Tensor) else to_torch(a)
    if t.dtype.is_floating_point:
        return Tensor(t.to(torch.float64).clone())
    return a if isinstance(a, Tensor) else Tensor(t)


def _outputs(out: Any) -> list[Tensor]:
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    for o in outs:
        if not isinstance(o, Tensor) or not o.dtype.is_floating_point:
            what = o.dtype if isinstance(o, Tensor) else type(o).__name__
            raise ValueError(f"gradcheck: fn must return floating Tensors; got {what}")
    return outs


def _evaluate(fn: Callable, xs: Sequence[Tensor]) -> torch.Tensor:
    with engine.no_grad():
        outs = _outputs(fn(*xs))
    return torch.cat([o.data.to(torch.float64).reshape(-1) for o in outs])


def _numeric_jacobian(fn: Callable, xs: list, i: int, eps: float) -> torch.Tensor:
    """[outputs, elements of input i] by central differences."""
    base = xs[i].data
    cols = []
    for j in range(base.numel()):
        shifted = []
        for sign in (1.0, -1.0):
            x = base.clone().reshape(-1)
            x[j] += sign * eps
            args = list(xs)
            args[i] = Tensor(x.reshape(base.shape))
            shifted.append(_evaluate(fn, args))
        cols.append((shifted[0] - shifted[1]) / (2 * eps))
    if not cols:
        return torch.zeros((_evaluate(fn, xs).numel(), 0), dtype=torch.float64)
    return torch.stack(cols, dim=1)


def _message(i: int, x: Tensor, shapes: list, ours, numeric, diff, bound, bad) -> str:
    excess = torch.where(torch.isnan(diff), torch.full_like(diff, math.inf), diff - bound)
    row, col = np.unravel_index(int(torch.argmax(excess)), tuple(ours.shape))
    out_name = _output_element(int(row), shapes)
    in_index = ",".join(str(int(k)) for k in np.unravel_index(int(col), x.shape)) if x.shape else ""
    return (f"gradcheck: input {i} (shape {fmt_shape(x.shape)}): d {out_name} / "
            f"d input{i}[{in_index}] is {float(ours[row, col]):.10g} by the tape but "
            f"{float(numeric[row, col]):.10g} by finite differences (|difference| "
            f"{float(diff[row, col]):.3g} > atol + rtol*|fd| = {float(bound[row, col]):.3g}); "
            f"{int(bad.sum())} of {bad.numel()} Jacobian entries differ")


def _output_element(flat_index: int, shapes: list) -> str:
    for k, shape in enumerate(shapes):
        n = math.prod(shape)
        if flat_index < n:
            idx = ",".join(str(int(v)) for v in np.unravel_index(flat_index, shape)) if shape else ""
            return f"output{'' if len(shapes) == 1 else k}[{idx}]"
        flat_index -= n
    return "output"
