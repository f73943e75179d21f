"""Pooling and patches in NCHW layout: max_pool2d, avg_pool2d, global pools, unfold2d
(im2col) and its adjoint fold2d.

Inputs are ``[batch, channels, height, width]`` (torch's native layout). ``padding`` is
'valid', 'same' (TensorFlow's rule, extra row/column at the bottom/right) or explicit
ints, see :mod:`trainctl.autodiff.ops.window`; padded cells never win a max and never
count in an average. ``strides`` defaults to ``pool_size``.

Max-pool ties: the gradient of a window is split evenly among its tied maxima
(TensorFlow's rule for max reductions, as ``tc.ops.max``), so a window's gradients sum
to its upstream gradient; torch instead routes it all to the first maximum.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainctl.autodiff.ops.conv import check_floating, check_rank
from trainctl.autodiff.ops.core import _as_tensors, defop, fmt_shape
from trainctl.autodiff.ops.elementwise import div, mul
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


@defop("max_pool2d")
def max_pool2d(x, pool_size, strides=None, padding="valid"):
    """Max over windows: x [N, C, H, W] (float) -> [N, C, H', W'].

    pool_size, strides: int or (h, w), strides default pool_size; padding 'valid' |
    'same' (TensorFlow's rule) | ints; padded cells are -inf, so they never win.
    Gradient: split evenly among a window's tied maxima (TensorFlow's max-reduction rule;
    torch gives all to the first). Raises ShapeError for a non-4-D input or a pool larger
    than the padded input. Kernel: torch.nn.functional.max_pool2d.
    """
    win = _pool_window("max_pool2d", x, pool_size, strides, padding)
    return F.max_pool2d(_pad(x, win, -math.inf), win.kernel, win.strides)


@max_pool2d.defvjp
def max_pool2d_vjp(g, out, x, pool_size, strides=None, padding="valid"):
    win = _pool_window("max_pool2d", x.data, pool_size, strides, padding)
    n, c, positions = x.shape[0], x.shape[1], math.prod(win.out)
    patches = F.unfold(_pad(x.data, win, -math.inf), win.kernel, stride=win.strides)
    hit = (patches.view(n, c, -1, positions) == out.data.reshape(n, c, 1, positions)).to(g.dtype)
    share = Tensor(hit / hit.sum(dim=2, keepdim=True))  # constant: piecewise in x
    routed = reshape(mul(share, reshape(g, (n, c, 1, positions))), (n, -1, positions))
    return (fold2d(routed, output_size=x.shape[2:], kernel_size=win.kernel,
                   strides=win.strides, padding=padding),)


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
