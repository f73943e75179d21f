"""Convolution and pooling layer kinds (Keras names and arguments), torch-free.

Layout is CHANNELS-FIRST (Keras ``data_format="channels_first"``; torch's): images are
[C, H, W] and sequences [C, L] after the batch axis. Output sizes per spatial axis, with
kernel k, stride s, dilation d (TensorFlow's rules, as trainctl.autodiff.ops):

* ``valid``: (n - (k-1)·d - 1) // s + 1 (an error when < 1);
* ``same``: ceil(n / s);
* transposed, ``same``: n·s; ``valid``: n·s + max((k-1)·d + 1 - s, 0).
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

from pydantic import PositiveInt

from trainctl.errors import ShapeError
from trainctl.spec.kinds.layers import (ActivationName, LayerConfig, LayerKind, fmt_shape,
                                        layer_kinds)
from trainctl.spec.kinds.weights import InitializerOption, RegularizerOption

IntOrPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
Padding = Literal["valid", "same"]


def pair(value, nd: int) -> tuple[int, ...]:
    """An int or an nd-tuple as an nd-tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * nd


def window_out(n: int, k: int, s: int, d: int, padding: str) -> int:
    """Output length along one axis (module docstring's rule); 0 or less when it does not fit."""
    if padding == "same":
        return math.ceil(n / s)
    return (n - (k - 1) * d - 1) // s + 1


def transpose_out(n: int, k: int, s: int, d: int, padding: str) -> int:
    """Output length of a transposed convolution along one axis (Keras)."""
    return n * s if padding == "same" else n * s + max((k - 1) * d + 1 - s, 0)


class ConvConfig(LayerConfig):
    """Options of conv1d / conv2d / conv2d_transpose (Keras' Conv*)."""

    filters: PositiveInt
    kernel_size: IntOrPair
    strides: IntOrPair = 1
    padding: Padding = "valid"
    dilation_rate: IntOrPair = 1
    groups: PositiveInt = 1
    activation: ActivationName = None
    use_bias: bool = True
    kernel_initializer: InitializerOption = "glorot_uniform"
    bias_initializer: InitializerOption = "zeros"
    kernel_regularizer: RegularizerOption = None
    bias_regularizer: RegularizerOption = None


class _Conv(LayerKind):
    rank: int = 2
    transposed: bool = False

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        nd, name = cls.rank, cls.registered_name
        layout = "[channels, length]" if nd == 1 else "[channels, height, width]"
        if len(input_shape) != nd + 1:
            raise ShapeError(f"{name} needs channels-first inputs {layout}, got shape "
                             f"{fmt_shape(input_shape)}")
        channels, sizes = input_shape[0], input_shape[1:]
        g = config.groups
        if channels % g or config.filters % g:
            raise ShapeError(f"{name}: {channels} input channels and {config.filters} filters "
                             f"must both be divisible by groups {g}")
        ks, ss, ds = (pair(v, nd) for v in (config.kernel_size, config.strides,
                                            config.dilation_rate))
        if not cls.transposed and config.padding == "same" and max(ss) > 1 and max(ds) > 1:
            raise ShapeError(f"{name}: strides > 1 with dilation_rate > 1 is not supported "
                             f"(as in Keras)")
        rule = transpose_out if cls.transposed else window_out
        out = tuple(rule(n, k, s, d, config.padding) for n, k, s, d in zip(sizes, ks, ss, ds))
        if min(out) < 1:
            raise ShapeError(f"{name}: kernel {fmt_shape(ks)} (dilation {fmt_shape(ds)}) is "
                             f"larger than the input {fmt_shape(sizes)} with padding "
                             f"'{config.padding}'")
        return (config.filters, *out)


@layer_kinds.register("conv1d")
class Conv1D(_Conv):
    """[C, L] → [filters, L'] (kernel [filters, C/groups, k] in torch layout)."""

    rank = 1

    class Config(ConvConfig):
        kernel_size: PositiveInt
        strides: PositiveInt = 1
        dilation_rate: PositiveInt = 1


@layer_kinds.register("conv2d")
class Conv2D(_Conv):
    """[C, H, W] → [filters, H', W'] (kernel [filters, C/groups, kh, kw] in torch layout)."""

    Config = ConvConfig


@layer_kinds.register("conv2d_transpose")
class Conv2DTranspose(_Conv):
    """[C, H, W] → [filters, H', W'], H' = H·s ('same') (kernel [C, filters/groups, kh, kw])."""

    Config = ConvConfig
    transposed = True


class PoolConfig(LayerConfig):
    """Options of max_pooling2d / average_pooling2d (Keras': strides default pool_size)."""

    pool_size: IntOrPair = 2
    strides: Optional[IntOrPair] = None
    padding: Padding = "valid"


class _Pool2D(LayerKind):
    Config = PoolConfig

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        if len(input_shape) != 3:
            raise ShapeError(f"{cls.registered_name} needs channels-first inputs "
                             f"[channels, height, width], got shape {fmt_shape(input_shape)}")
        ks = pair(config.pool_size, 2)
        ss = pair(config.strides, 2) if config.strides is not None else ks
        out = tuple(window_out(n, k, s, 1, config.padding)
                    for n, k, s in zip(input_shape[1:], ks, ss))
        if min(out) < 1:
            raise ShapeError(f"{cls.registered_name}: pool {fmt_shape(ks)} is larger than the "
                             f"input {fmt_shape(input_shape[1:])}")
        return (input_shape[0], *out)


@layer_kinds.register("max_pooling2d")
class MaxPooling2D(_Pool2D):
    """[C, H, W] → [C, H', W'], the max of each window."""


@layer_kinds.register("average_pooling2d")
class AveragePooling2D(_Pool2D):
    """[C, H, W] → [C, H', W'], the mean of each window (padding cells not counted)."""


class GlobalPoolConfig(LayerConfig):
    """``keepdims``: keep H and W as size 1 (Keras)."""

    keepdims: bool = False


class _GlobalPool2D(LayerKind):
    Config = GlobalPoolConfig

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        if len(input_shape) != 3:
            raise ShapeError(f"{cls.registered_name} needs channels-first inputs "
                             f"[channels, height, width], got shape {fmt_shape(input_shape)}")
        return (input_shape[0], 1, 1) if config.keepdims else (input_shape[0],)


@layer_kinds.register("global_average_pooling2d")
class GlobalAveragePooling2D(_GlobalPool2D):
    """[C, H, W] → [C]: mean over H and W."""


@layer_kinds.register("global_max_pooling2d")
class GlobalMaxPooling2D(_GlobalPool2D):
    """[C, H, W] → [C]: max over H and W."""


