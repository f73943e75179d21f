"""Convolutions, channels-first: conv2d, conv2d_bias, conv2d_transpose, conv2d_weight_grad,
conv1d.

Layout is torch's native one: inputs NCHW ``[batch, channels, height, width]`` (conv1d:
NCL ``[batch, channels, length]``); kernels ``[out_channels, in_channels/groups, kh, kw]``
(conv2d_transpose: ``[in_channels, out_channels/groups, kh, kw]``, as torch).
Convolution is cross-correlation (no kernel flip). ``padding`` is 'valid', 'same'
(TensorFlow's rule, extra row/column at the bottom/right) or explicit ints, see
:mod:`trainctl.autodiff.ops.window`; asymmetric padding is applied with an explicit pad
before the torch kernel. Bias is a separate ``add`` (the engine unbroadcasts), or fused
into the kernel call by conv2d_bias (what the conv2d layer uses).

The three registered ops are closed under differentiation, so gradients of any order
exist. With the same strides, padding, dilation and groups throughout:

- conv2d(x, w):                 dx = conv2d_transpose(g, w),  dw = conv2d_weight_grad(x, g)
- conv2d_transpose(x, w):       dx = conv2d(g, w),            dw = conv2d_weight_grad(g, x)
- conv2d_weight_grad(x, g), upstream k: dx = conv2d_transpose(g, k),  dg = conv2d(x, k)

since <conv2d(x, w), g> = <x, conv2d_transpose(g, w)> = <w, conv2d_weight_grad(x, g)>.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainctl.autodiff.ops.core import _as_tensors, defop, fmt_shape
from trainctl.autodiff.ops.movement import expand_dims, reshape
from trainctl.autodiff.ops.reduce import sum as reduce_sum
from trainctl.autodiff.ops.window import Window, ints, padding_mode, window
from trainctl.autodiff.tensor import Tensor
from trainctl.backend.precision import back_to_float32, low_precision
from trainctl.errors import DTypeError, ShapeError

_LAYOUT = {1: ("[N,C,L]", "k"), 2: ("[N,C,H,W]", "kh,kw")}


def check_floating(op: str, **operands) -> None:
    """DTypeError unless every named torch operand is floating."""
    for name, t in operands.items():
        if not t.dtype.is_floating_point:
            raise DTypeError(f"{op}: {name} dtype {str(t.dtype)[6:]} is not floating")


def check_rank(op: str, name: str, shape, nd: int, layout: str) -> None:
    if len(shape) != nd + 2:
        raise ShapeError(f"{op}: {name} {fmt_shape(shape)} must be {nd + 2}-D {layout}")


def _check_groups(op: str, groups) -> int:
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be an int >= 1; got {groups!r}")
    return groups


def conv_window(op: str, x_shape, k_shape, strides, padding, dilation, groups, nd: int) -> Window:
    """Check a convolution's input [N, C, *spatial] and kernel [O, C/groups, *k]; resolve
    its window. Raises ShapeError naming ``op`` and both shapes."""
    layout, ks = _LAYOUT[nd]
    check_rank(op, "input", x_shape, nd, layout)
    check_rank(op, "kernel", k_shape, nd, f"[out_channels,in_channels/groups,{ks}]")
    groups = _check_groups(op, groups)
    if x_shape[1] != k_shape[1] * groups:
        raise ShapeError(f"{op}: input {fmt_shape(x_shape)} has {x_shape[1]} channels, kernel "
                         f"{fmt_shape(k_shape)} with groups {groups} expects "
                         f"{k_shape[1] * groups}")
    if k_shape[0] % groups:
        raise ShapeError(f"{op}: kernel {fmt_shape(k_shape)} has {k_shape[0]} output channels, "
                         f"not divisible by groups {groups}")
    return window(op, x_shape, k_shape[2:], strides, padding, dilation,
                  f"kernel {fmt_shape(k_shape)}")


def _padded(x: torch.Tensor, win: Window) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x and the symmetric padding to give the torch kernel; asymmetric pads are applied here."""
    if win.symmetric:
        return x, win.before
    return F.pad(x, win.torch_pad), (0,) * len(win.pads)


def _crop(y: torch.Tensor, before, sizes) -> torch.Tensor:
    key = (Ellipsis,) + tuple(slice(b, b + n) for b, n in zip(before, sizes))
    return y[key].contiguous()


@defop("conv2d", inputs=2)
def conv2d(x, kernel, strides=1, padding="valid", dilation=1, groups=1):
    """2-D convolution (cross-correlation) in NCHW layout.

    x [N, C, H, W] (float), kernel [O, C/groups, kh, kw] -> [N, O, H', W'] with
    H' = ceil(H/sh) for 'same' and (H + pads - (kh-1)·dh - 1) // sh + 1 otherwise.
    strides, dilation: int or (sh, sw); padding: 'valid' | 'same' (TensorFlow's rule) |
    int | (ph, pw) on both sides; groups: C and O split into groups convolved separately.
    Raises ShapeError (``conv2d: input [2,3,8,8] has 3 channels, kernel [4,2,3,3] with
    groups 1 expects 2``; a kernel larger than the padded input), DTypeError for
    non-floating operands. Kernel: torch.nn.functional.conv2d.
    """
    check_floating("conv2d", input=x, kernel=kernel)
    win = conv_window("conv2d", x.shape, kernel.shape, strides, padding, dilation, groups, 2)
    xp, pad = _padded(x, win)
    lx, lk = low_precision(xp, kernel)  # precision policy (trainctl.backend.precision)
    return back_to_float32(F.conv2d(lx, lk, None, win.strides, pad, win.dilation, groups), (x,))


@conv2d.defvjp
def conv2d_vjp(g, out, x, kernel, **attrs):
    gx = conv2d_transpose(g, kernel, output_shape=x.shape[2:], **attrs) if x.tracked else None
    gk = conv2d_weight_grad(x, g, kernel_size=kernel.shape[2:], **attrs) if kernel.tracked else None
    return gx, gk


@defop("conv2d_bias", inputs=3)
def conv2d_bias(x, kernel, bias, strides=1, padding="valid", dilation=1, groups=1):
    """conv2d(x, kernel) + bias per output channel, in one kernel call (fused for speed:
    no separate pass adding the bias): x [N, C, H, W], kernel [O, C/groups, kh, kw],
    bias [O] -> [N, O, H', W']. Attributes, output size and errors as conv2d; ShapeError
    when bias is not [O]. Gradients: conv2d's, and the sum of g over N, H', W' for bias.
    Kernel: torch.nn.functional.conv2d with its bias argument.
    """
    check_floating("conv2d_bias", input=x, kernel=kernel, bias=bias)
    win = conv_window("conv2d_bias", x.shape, kernel.shape, strides, padding, dilation, groups, 2)
    if tuple(bias.shape) != (kernel.shape[0],):
        raise ShapeError(f"conv2d_bias: bias {fmt_shape(bias.shape)} must be "
                         f"[{kernel.shape[0]}] for kernel {fmt_shape(kernel.shape)}")
    xp, pad = _padded(x, win)
    lx, lk, lb = low_precision(xp, kernel, bias)  # precision policy (trainctl.backend.precision)
    return back_to_float32(F.conv2d(lx, lk, lb, win.strides, pad, win.dilation, groups), (x,))


@conv2d_bias.defvjp
def conv2d_bias_vjp(g, out, x, kernel, bias, **attrs):
    gx, gk = conv2d_vjp(g, out, x, kernel, **attrs)
    return gx, gk, (reduce_sum(g, axis=(0, 2, 3)) if bias.tracked else None)


def _transpose_sizes(x_shape, k_shape, strides, padding, dilation, output_shape) -> tuple:
    """Spatial output size of conv2d_transpose: output_shape, or the default of the padding."""
    n, k = x_shape[2:], k_shape[2:]
    s = ints("conv2d_transpose", "strides", strides, 2)
    d = ints("conv2d_transpose", "dilation", dilation, 2)
    if output_shape is not None:
        return ints("conv2d_transpose", "output_shape", tuple(output_shape), 2)
    mode = padding_mode("conv2d_transpose", padding, 2)
    span = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
    if mode == "same":
        m = [ni * si for ni, si in zip(n, s)]
    elif mode == "valid":
        m = [ni * si + max(sp - si, 0) for ni, si, sp in zip(n, s, span)]
    else:
        m = [(ni - 1) * si + sp - 2 * p for ni, si, sp, p in zip(n, s, span, mode)]
    if min(m) < 1:
        raise ShapeError(f"conv2d_transpose: padding {padding!r} leaves no output for input "
                         f"{fmt_shape(x_shape)} and kernel {fmt_shape(k_shape)}")
    return tuple(m)


@defop("conv2d_transpose", inputs=2)
def conv2d_transpose(x, kernel, strides=1, padding="valid", dilation=1, groups=1,
                     output_shape=None):
    """Transposed 2-D convolution in NCHW layout: the adjoint (input gradient) of conv2d.

    x [N, C, H, W] (float), kernel [C, O/groups, kh, kw] (torch's layout) -> [N, O, H', W'].
    Output size (H', W'): ``output_shape`` if given (any size that conv2d with the same
    attributes maps back to (H, W)); else 'same' -> H·sh (TensorFlow/Keras),
    'valid' -> H·sh + max((kh-1)·dh + 1 - sh, 0) (Keras; equals torch's
    (H-1)·sh + (kh-1)·dh + 1 when the dilated kernel is at least the stride), int p ->
    (H-1)·sh + (kh-1)·dh + 1 - 2p (torch). conv2d(y, kernel, same attributes) maps
    [N, O, H', W'] to [N, C, H, W], and <conv2d(y, k), x> = <y, conv2d_transpose(x, k)>.
    Raises ShapeError for mismatched channels or an output_shape that does not fit.
    Kernel: torch.ops.aten.convolution_backward (conv2d's input gradient), then a crop of
    asymmetric padding.
    """
    op = "conv2d_transpose"
    check_floating(op, input=x, kernel=kernel)
    check_rank(op, "input", x.shape, 2, _LAYOUT[2][0])
    check_rank(op, "kernel", kernel.shape, 2, "[in_channels,out_channels/groups,kh,kw]")
    groups = _check_groups(op, groups)
    if x.shape[1] != kernel.shape[0]:
        raise ShapeError(f"{op}: input {fmt_shape(x.shape)} has {x.shape[1]} channels, kernel "
                         f"{fmt_shape(kernel.shape)} expects {kernel.shape[0]} "
                         f"(kernel is [in_channels,out_channels/groups,kh,kw])")
    m = _transpose_sizes(x.shape, kernel.shape, strides, padding, dilation, output_shape)
    y_shape = (x.shape[0], kernel.shape[1] * groups) + m
    win = conv_window(op, y_shape, kernel.shape, strides, padding, dilation, groups, 2)
    if win.out != tuple(x.shape[2:]):
        raise ShapeError(f"{op}: output_shape {fmt_shape(m)} does not fit input "
                         f"{fmt_shape(x.shape)}: conv2d with these attributes maps "
                         f"{fmt_shape(m)} to {fmt_shape(win.out)}")
    lx, lk = low_precision(x, kernel)  # precision policy (trainctl.backend.precision)
    return back_to_float32(_transpose_kernel(lx, lk, win, m, groups), (x,))


def _transpose_kernel(x, kernel, win: Window, m, groups) -> torch.Tensor:
    """conv2d's input gradient onto the padded size (rows a strided conv2d leaves unread get
    0), then a crop of asymmetric padding. Kernel: torch.ops.aten.convolution_backward
    (input part; the "input" operand is only a shape), as torch's own conv2d backward;
    F.conv_transpose2d gives the same values but is slower on CPU."""
    full = m if win.symmetric else tuple(mi + lo + hi for mi, (lo, hi) in zip(m, win.pads))
    pad = win.before if win.symmetric else (0, 0)
    shape = (x.shape[0], kernel.shape[1] * groups) + tuple(full)
    y = torch.ops.aten.convolution_backward(
        x, x.new_empty(shape), kernel, None, list(win.strides), list(pad), list(win.dilation),
        False, [0, 0], groups, [True, False, False])[0]
    return y if win.symmetric else _crop(y, win.before, m)


@conv2d_transpose.defvjp
def conv2d_transpose_vjp(g, out, x, kernel, output_shape=None, **attrs):
    gx = conv2d(g, kernel, **attrs) if x.tracked else None
    gk = conv2d_weight_grad(g, x, kernel_size=kernel.shape[2:], **attrs) if kernel.tracked else None
    return gx, gk


@defop("conv2d_weight_grad", inputs=2)
def conv2d_weight_grad(x, g, kernel_size, strides=1, padding="valid", dilation=1, groups=1):
    """The kernel gradient of conv2d: d sum(conv2d(x, w) * g) / dw (independent of w).

    x [N, C, H, W] (float), g [N, O, H', W'] (conv2d's output shape), kernel_size (kh, kw)
    -> [O, C/groups, kh, kw]. Attributes as conv2d. Raises ShapeError when g is not the
    shape conv2d would give. Kernel: torch.ops.aten.convolution_backward (weight part).
    """
    op = "conv2d_weight_grad"
    check_floating(op, input=x, gradient=g)
    check_rank(op, "input", x.shape, 2, _LAYOUT[2][0])
    check_rank(op, "gradient", g.shape, 2, "[N,O,H',W']")
    groups = _check_groups(op, groups)
    if x.shape[1] % groups:
        raise ShapeError(f"{op}: input {fmt_shape(x.shape)} has {x.shape[1]} channels, not "
                         f"divisible by groups {groups}")
    k_shape = (g.shape[1], x.shape[1] // groups) + ints(op, "kernel_size", tuple(kernel_size), 2)
    win = conv_window(op, x.shape, k_shape, strides, padding, dilation, groups, 2)
    if tuple(g.shape) != (x.shape[0], g.shape[1]) + win.out:
        raise ShapeError(f"{op}: gradient {fmt_shape(g.shape)} is not the output shape of conv2d "
                         f"of input {fmt_shape(x.shape)} with kernel {fmt_shape(k_shape)} "
                         f"({fmt_shape((x.shape[0], g.shape[1]) + win.out)})")
    xp, pad = _padded(x, win)
    lg, lx = low_precision(g, xp)  # precision policy (trainctl.backend.precision)
    return back_to_float32(torch.ops.aten.convolution_backward(
        lg, lx, lx.new_empty(k_shape), None, list(win.strides), list(pad), list(win.dilation),
        False, [0, 0], groups, [False, True, False])[1], (x,))


@conv2d_weight_grad.defvjp
def conv2d_weight_grad_vjp(k, out, x, g, kernel_size, **attrs):
    gx = conv2d_transpose(g, k, output_shape=x.shape[2:], **attrs) if x.tracked else None
    gg = conv2d(x, k, **attrs) if g.tracked else None
    return gx, gg


def conv1d(x, kernel, strides=1, padding="valid", dilation=1, groups=1) -> Tensor:
    """1-D convolution (cross-correlation) in NCL layout.

    x [N, C, L] (float), kernel [O, C/groups, k] -> [N, O, L'], L' as conv2d's H'.
    strides, dilation: int; padding: 'valid' | 'same' (TensorFlow's rule) | int.
    Composed: conv2d over a height-1 image, so its gradients are conv2d's. Raises
    ShapeError and DTypeError as conv2d, naming conv1d.
    """
    x, kernel = _as_tensors("conv1d", (x, kernel))
    check_floating("conv1d", input=x, kernel=kernel)
    conv_window("conv1d", x.shape, kernel.shape, strides, padding, dilation, groups, 1)
    mode = padding_mode("conv1d", padding, 1)
    y = conv2d(expand_dims(x, 2), expand_dims(kernel, 2),
               strides=(1,) + ints("conv1d", "strides", strides, 1),
               padding=mode if isinstance(mode, str) else (0,) + mode,
               dilation=(1,) + ints("conv1d", "dilation", dilation, 1), groups=groups)
    return reshape(y, (y.shape[0], y.shape[1], y.shape[3]))
