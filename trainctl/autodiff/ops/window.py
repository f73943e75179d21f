"""Sliding-window geometry shared by convolution and pooling (channels-first layout).

Tensors are NCHW (``[batch, channels, height, width]``) or NCL for one spatial axis,
torch's native layout. ``padding`` is one of

- ``'valid'``: no padding; a window never leaves the input;
- ``'same'``: TensorFlow's rule. Per spatial axis of size n, kernel k, stride s and
  dilation d, the output has ceil(n/s) positions and
  total = max((ceil(n/s) - 1)·s + (k-1)·d + 1 - n, 0), before = total // 2,
  after = total - before: an odd total puts the extra row/column at the bottom/right
  (source: TensorFlow's ``GetWindowedOutputSize``, tensorflow/core/framework/kernel_shape_util.cc);
- an int, or one int per spatial axis: that many rows/columns on both sides (torch's
  ``padding=``).
"""

from __future__ import annotations

from dataclasses import dataclass

from trainctl.autodiff.ops.core import fmt_shape
from trainctl.errors import ShapeError


def same_padding(n: int, k: int, s: int, dilation: int = 1) -> tuple[int, int, int]:
    """``(out, before, after)`` of TensorFlow's 'same' padding for one axis.

    n: input size, k: kernel size, s: stride, dilation: kernel dilation (the kernel spans
    (k-1)·dilation + 1). E.g. (224, 7, 2) -> (112, 2, 3); (4, 3, 2) -> (2, 0, 1).
    Raises ValueError for n < 0 or k, s, dilation < 1.
    """
    if n < 0 or k < 1 or s < 1 or dilation < 1:
        raise ValueError(f"same_padding: needs n >= 0 and k, s, dilation >= 1; got "
                         f"n={n}, k={k}, s={s}, dilation={dilation}")
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * dilation + 1 - n, 0)
    return out, total // 2, total - total // 2


def ints(op: str, name: str, value, nd: int, minimum: int = 1) -> tuple[int, ...]:
    """``value`` (an int or ``nd`` ints) as a tuple of ``nd`` ints >= ``minimum``."""
    vals = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(vals) != nd or not all(isinstance(v, int) and v >= minimum for v in vals):
        raise ValueError(f"{op}: {name} must be an int >= {minimum} or {nd} such ints; "
                         f"got {value!r}")
    return vals


def padding_mode(op: str, padding, nd: int):
    """'valid', 'same' (any case), or a tuple of ``nd`` non-negative ints."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in ("valid", "same"):
            raise ValueError(f"{op}: padding must be 'valid', 'same' or ints; got {padding!r}")
        return mode
    return ints(op, "padding", padding, nd, minimum=0)


@dataclass(frozen=True)
class Window:
    """A resolved window: per spatial axis kernel, stride, dilation, (before, after) pads
    and output size."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out: tuple[int, ...]

    @property
    def symmetric(self) -> bool:
        return all(lo == hi for lo, hi in self.pads)

    @property
    def before(self) -> tuple[int, ...]:
        return tuple(lo for lo, _ in self.pads)

    @property
    def torch_pad(self) -> tuple[int, ...]:
        """The pads in ``torch.nn.functional.pad`` order (last axis first)."""
        return tuple(p for lo_hi in reversed(self.pads) for p in lo_hi)

    @property
    def padded(self) -> bool:
        return any(lo or hi for lo, hi in self.pads)


def window(op: str, x_shape, kernel, strides, padding, dilation, what: str) -> Window:
    """The window of ``kernel`` (spatial sizes) sliding over the spatial axes of
    ``x_shape`` ([N, C, *spatial]). ``what`` names the kernel in errors.

    Raises ShapeError when the (dilated) kernel is larger than the padded input.
    """
    sizes = tuple(x_shape[2:])
    nd = len(sizes)
    kernel = ints(op, "kernel size", kernel, nd)
    strides = ints(op, "strides", strides, nd)
    dilation = ints(op, "dilation", dilation, nd)
    mode = padding_mode(op, padding, nd)
    if mode == "same":
        geo = [same_padding(n, k, s, d) for n, k, s, d in zip(sizes, kernel, strides, dilation)]
        pads = tuple((lo, hi) for _, lo, hi in geo)
    else:
        pads = tuple((p, p) for p in ((0,) * nd if mode == "valid" else mode))
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    full = tuple(n + lo + hi for n, (lo, hi) in zip(sizes, pads))
    if 0 in sizes:
        raise ShapeError(f"{op}: input {fmt_shape(x_shape)} has an empty spatial axis")
    if any(sp > f for sp, f in zip(span, full)):
        if any(d > 1 for d in dilation):
            what += (f" (spanning {'x'.join(map(str, span))} with dilation "
                     f"{'x'.join(map(str, dilation))})")
        raise ShapeError(f"{op}: {what} is larger than the padded input "
                         f"{'x'.join(map(str, full))} (input {fmt_shape(x_shape)}, "
                         f"padding {padding!r})")
    out = tuple((f - sp) // s + 1 for f, sp, s in zip(full, span, strides))
    return Window(kernel, strides, dilation, pads, out)
