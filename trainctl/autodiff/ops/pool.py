"""Pooling and patches in NCHW layout: max_pool2d, avg_pool2d, global pools, unfold2d
(im2col) and its adjoint fold2d.

Inputs are ``[batch, channels, height, width]`` (torch's native layout). ``padding`` is
'valid', 'same' (TensorFlow's rule, extra row/column at the bottom/right) or explicit
ints, see :mod:`trainctl.autodiff.ops.window`; padded cells never win a max and never
count in an average. ``strides`` defaults to ``pool_size``.

Max-pool ties: a window's gradient goes to its first maximum in row-major order, as
torch's max_pool2d and TensorFlow's MaxPoolGrad route it (unlike the max reductions
``tc.ops.max`` / ``global_max_pool2d``, which split ties evenly, as tf.reduce_max does).
max_pool2d's gradient is the op max_pool2d_grad, whose own gradient is max_pool2d_gather
and back, so gradients of any order exist.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainctl.autodiff.ops.conv import check_floating, check_rank
from trainctl.autodiff.ops.core import _as_tensors, defop, fmt_shape
from trainctl.autodiff.ops.elementwise import div
from trainctl.autodiff.ops.movement import broadcast_to, reshape
from trainctl.autodiff.ops.reduce import max as reduce_max
from trainctl.autodiff.ops.reduce import mean
from trainctl.autodiff.ops.window import Window, ints, window
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError

NCHW = "[N,C,H,W]"


@defop("unfold2d")
def unfold2d(x, kernel_size, strides=1, padding="valid", dilation=1):
    """Sliding patches (im2col): x [N, C, H, W] -> [N, C·kh·kw, L].

    L = H'·W' window positions in row-major order; rows ordered (channel, kernel row,
    kernel column), as torch.nn.functional.unfold; padded cells hold 0. Attributes as
    conv2d. Raises ShapeError for a non-4-D input or a kernel larger than the padded input.
    """
    check_floating("unfold2d", input=x)
    check_rank("unfold2d", "input", x.shape, 2, NCHW)
    win = window("unfold2d", x.shape, kernel_size, strides, padding, dilation, "kernel")
    xp = F.pad(x, win.torch_pad) if win.padded else x
    return F.unfold(xp, win.kernel, win.dilation, 0, win.strides)


@unfold2d.defvjp
def unfold2d_vjp(g, out, x, **attrs):
    return (fold2d(g, output_size=x.shape[2:], **attrs),)


@defop("fold2d")
def fold2d(p, output_size, kernel_size, strides=1, padding="valid", dilation=1):
    """The adjoint of unfold2d: patches p [N, C·kh·kw, L] summed into [N, C, H, W].

    output_size is (H, W); cells that fall in the padding are dropped. Raises ShapeError
    when p's rows are not a multiple of kh·kw or L is not the number of windows.
    Kernel: torch.nn.functional.fold, then a crop of the padding.
    """
    op = "fold2d"
    check_floating(op, patches=p)
    kernel = ints(op, "kernel size", kernel_size, 2)
    size = ints(op, "output_size", tuple(output_size), 2)
    k = math.prod(kernel)
    if p.dim() != 3 or p.shape[1] % k:
        raise ShapeError(f"{op}: patches {fmt_shape(p.shape)} must be 3-D [N,C*{k},L] for "
                         f"kernel {kernel[0]}x{kernel[1]}")
    win = window(op, (p.shape[0], p.shape[1] // k) + size, kernel, strides, padding, dilation,
                 "kernel")
    if p.shape[2] != math.prod(win.out):
        raise ShapeError(f"{op}: patches {fmt_shape(p.shape)} have {p.shape[2]} positions; "
                         f"output_size {fmt_shape(size)} has {math.prod(win.out)} windows")
    full = tuple(n + lo + hi for n, (lo, hi) in zip(size, win.pads))
    y = F.fold(p, full, win.kernel, win.dilation, 0, win.strides)
    if not win.padded:
        return y
    return y[..., win.pads[0][0]:win.pads[0][0] + size[0],
             win.pads[1][0]:win.pads[1][0] + size[1]].contiguous()


@fold2d.defvjp
def fold2d_vjp(g, out, p, output_size, **attrs):
    return (unfold2d(g, **attrs),)


def _pool_window(op: str, x, pool_size, strides, padding) -> Window:
    check_floating(op, input=x)
    check_rank(op, "input", x.shape, 2, NCHW)
    pool = ints(op, "pool_size", pool_size, 2)
    return window(op, x.shape, pool, pool if strides is None else strides, padding, 1,
                  f"pool {pool[0]}x{pool[1]}")


def _pad(x: torch.Tensor, win: Window, value: float) -> torch.Tensor:
    return F.pad(x, win.torch_pad, value=value) if win.padded else x


def _pool_args(win: Window) -> tuple[list[int], list[int]]:
    return list(win.kernel), list(win.strides)


def _argmax(xp: torch.Tensor, win: Window) -> torch.Tensor:
    """int64 [N, C, H', W']: flat (row·W + column) index into the padded plane of each
    window's first maximum. Kernel: torch.ops.aten.max_pool2d_with_indices, run in
    channels-last memory order (the same indices; its NCHW kernel is several times slower
    on CPU)."""
    cl = xp.contiguous(memory_format=torch.channels_last)
    return torch.ops.aten.max_pool2d_with_indices(cl, *_pool_args(win))[1].contiguous()


def _check_pooled(op: str, what: str, t, x, win: Window) -> None:
    want = (x.shape[0], x.shape[1]) + win.out
    if tuple(t.shape) != want:
        raise ShapeError(f"{op}: {what} {fmt_shape(t.shape)} is not max_pool2d's output shape "
                         f"for input {fmt_shape(x.shape)} ({fmt_shape(want)})")


@defop("max_pool2d")
def max_pool2d(x, pool_size, strides=None, padding="valid"):
    """Max over windows: x [N, C, H, W] (float) -> [N, C, H', W'].

    pool_size, strides: int or (h, w), strides default pool_size; padding 'valid' |
    'same' (TensorFlow's rule) | ints; padded cells are -inf, so they never win.
    Gradient (max_pool2d_grad): all of a window's gradient goes to its first maximum in
    row-major order, as torch.nn.functional.max_pool2d and TensorFlow's MaxPoolGrad do.
    Raises ShapeError for a non-4-D input or a pool larger than the padded input.
    Kernel: torch.ops.aten.max_pool2d_with_indices in channels-last memory order (the
    output is returned contiguous, NCHW).
    """
    win = _pool_window("max_pool2d", x, pool_size, strides, padding)
    cl = _pad(x, win, -math.inf).contiguous(memory_format=torch.channels_last)
    return torch.ops.aten.max_pool2d_with_indices(cl, *_pool_args(win))[0].contiguous()


@max_pool2d.defvjp
def max_pool2d_vjp(g, out, x, **attrs):
    return (max_pool2d_grad(g, x, **attrs),)


@defop("max_pool2d_grad", inputs=2)
def max_pool2d_grad(g, x, pool_size, strides=None, padding="valid"):
    """max_pool2d's input gradient: g [N, C, H', W'] routed to x [N, C, H, W] -> [N, C, H, W].

    Each window's g goes to the window's first maximum of x (row-major order; torch's and
    TensorFlow's MaxPoolGrad rule); overlapping windows add; cells no window picks get 0.
    Linear in g, piecewise constant in x (its x gradient is zero). Attributes as max_pool2d.
    Raises ShapeError when g is not max_pool2d's output shape for x.
    Kernel: torch.ops.aten.max_pool2d_with_indices_backward.
    """
    op = "max_pool2d_grad"
    win = _pool_window(op, x, pool_size, strides, padding)
    _check_pooled(op, "gradient", g, x, win)
    xp = _pad(x, win, -math.inf)
    gx = torch.ops.aten.max_pool2d_with_indices_backward(
        g.contiguous(), xp, *_pool_args(win), [0, 0], [1, 1], False, _argmax(xp, win))
    if not win.padded:
        return gx
    (top, _), (left, _) = win.pads
    return gx[..., top:top + x.shape[2], left:left + x.shape[3]].contiguous()


@max_pool2d_grad.defvjp
def max_pool2d_grad_vjp(h, out, g, x, **attrs):
    return (max_pool2d_gather(h, x, **attrs) if g.tracked else None), _zero(x)


def _zero(x: Tensor) -> Tensor | None:
    """The gradient in x of a rule piecewise constant in x (a zero rule, as torch's)."""
    return Tensor(torch.zeros_like(x.data)) if x.tracked else None


@defop("max_pool2d_gather", inputs=2)
def max_pool2d_gather(h, x, pool_size, strides=None, padding="valid"):
    """h [N, C, H, W] read at each window's first maximum of x [N, C, H, W] -> [N, C, H', W']
    (the adjoint of max_pool2d_grad in its first input; max_pool2d_gather(x, x) equals
    max_pool2d(x)). Attributes as max_pool2d. Raises ShapeError when h and x differ in
    shape. Kernel: torch.gather on the indices of torch's max_pool2d_with_indices.
    """
    op = "max_pool2d_gather"
    win = _pool_window(op, x, pool_size, strides, padding)
    if h.shape != x.shape:
        raise ShapeError(f"{op}: values {fmt_shape(h.shape)} and input {fmt_shape(x.shape)} "
                         f"differ in shape")
    idx = _argmax(_pad(x, win, -math.inf), win)
    hp = _pad(h, win, 0.0)
    return hp.flatten(2).gather(2, idx.flatten(2)).view(idx.shape)


@max_pool2d_gather.defvjp
def max_pool2d_gather_vjp(u, out, h, x, **attrs):
    return (max_pool2d_grad(u, x, **attrs) if h.tracked else None), _zero(x)


def _counts(win: Window, x: torch.Tensor) -> torch.Tensor:
    """[1, 1, H', W']: how many real (non-padded) cells each window covers."""
    ones = x.new_ones((1, 1) + tuple(x.shape[2:]))
    return F.avg_pool2d(F.pad(ones, win.torch_pad), win.kernel, win.strides, divisor_override=1)


@defop("avg_pool2d")
def avg_pool2d(x, pool_size, strides=None, padding="valid"):
    """Mean over windows: x [N, C, H, W] (float) -> [N, C, H', W'].

    Attributes as max_pool2d. Each window divides by its number of real (non-padded)
    cells, as TensorFlow's 'same' does (torch's count_include_pad=False). Raises
    ShapeError as max_pool2d. Kernel: torch.nn.functional.avg_pool2d.
    """
    win = _pool_window("avg_pool2d", x, pool_size, strides, padding)
    if not win.padded:
        return F.avg_pool2d(x, win.kernel, win.strides)
    sums = F.avg_pool2d(F.pad(x, win.torch_pad), win.kernel, win.strides, divisor_override=1)
    return sums / _counts(win, x)


@avg_pool2d.defvjp
def avg_pool2d_vjp(g, out, x, pool_size, strides=None, padding="valid"):
    win = _pool_window("avg_pool2d", x.data, pool_size, strides, padding)
    n, c, k, positions = x.shape[0], x.shape[1], math.prod(win.kernel), math.prod(win.out)
    scaled = div(g, Tensor(_counts(win, x.data)) if win.padded else float(k))
    spread = broadcast_to(reshape(scaled, (n, c, 1, positions)), (n, c, k, positions))
    return (fold2d(reshape(spread, (n, c * k, positions)), output_size=x.shape[2:],
                   kernel_size=win.kernel, strides=win.strides, padding=padding),)


def _global_input(op: str, x) -> Tensor:
    (x,) = _as_tensors(op, (x,))
    check_rank(op, "input", x.shape, 2, NCHW)
    return x


def global_average_pool2d(x, keepdims: bool = False) -> Tensor:
    """Mean over H and W: [N, C, H, W] -> [N, C] ([N, C, 1, 1] with keepdims).

    Composed: ``mean(x, axis=(2, 3))``. Raises ShapeError for a non-4-D input.
    """
    return mean(_global_input("global_average_pool2d", x), axis=(2, 3), keepdims=keepdims)


def global_max_pool2d(x, keepdims: bool = False) -> Tensor:
    """Max over H and W: [N, C, H, W] -> [N, C] ([N, C, 1, 1] with keepdims).

    Composed: ``max(x, axis=(2, 3))``, so tied maxima share the gradient evenly.
    Raises ShapeError for a non-4-D input.
    """
    return reduce_max(_global_input("global_max_pool2d", x), axis=(2, 3), keepdims=keepdims)
