"""Convolution and pooling layers, channels-first (NCHW / NCL) as trainctl.autodiff.ops.

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_conv`. Kernels are stored
in torch's layout (conv: [filters, C/groups, kh, kw]; transposed: [C, filters/groups, kh,
kw]) but initialised in Keras' layout ([kh, kw, in, out]) and permuted, so fan_in/fan_out
(and thus glorot/he/lecun limits) are Keras'.
"""

from __future__ import annotations


from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Variable
from trainctl.nn.activations import activations
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds
from trainctl.spec.kinds.layers_conv import pair


def add_kernel(layer: Layer, keras_shape: tuple[int, ...], initializer, device,
               regularizer=None) -> Variable:
    """A ``kernel`` weight drawn in Keras' layout [*k, a, b] and stored as torch's [b, a, *k]."""
    var = layer.add_weight("kernel", keras_shape, initializer, device, regularizer=regularizer)
    nd = len(keras_shape) - 2
    perm = (nd + 1, nd) + tuple(range(nd))
    var.data = var.data.permute(perm).contiguous()
    return var


class _Conv(Layer):
    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg, nd = self.config, self.rank
        ks = pair(cfg.kernel_size, nd)
        c_in, g = input_shape[0], cfg.groups
        keras = ((*ks, cfg.filters // g, c_in) if self.transposed
                 else (*ks, c_in // g, cfg.filters))
        self.kernel = add_kernel(self, keras, cfg.kernel_initializer, device,
                                 cfg.kernel_regularizer)
        self.bias = (self.add_weight("bias", (cfg.filters,), cfg.bias_initializer, device,
                                     regularizer=cfg.bias_regularizer) if cfg.use_bias else None)
        self._activation = activations.get(cfg.activation or "linear")
        self._out = out
        return out

    def _conv(self, x):
        cfg = self.config
        return {1: ops.conv1d, 2: ops.conv2d}[self.rank](
            x, self.kernel, strides=cfg.strides, padding=cfg.padding,
            dilation=cfg.dilation_rate, groups=cfg.groups)

    def call(self, x, training=False):
        y = self._conv(x)
        if self.bias is not None:
            y = y + ops.reshape(self.bias, (-1,) + (1,) * self.rank)
        return self._activation(y)


class _BiasFused(_Conv):
    """A 2-D convolution whose bias is added inside the kernel call (ops.conv2d_bias)."""

    def call(self, x, training=False):
        if self.bias is None:
            return super().call(x, training)
        cfg = self.config
        return self._activation(ops.conv2d_bias(
            x, self.kernel, self.bias, strides=cfg.strides, padding=cfg.padding,
            dilation=cfg.dilation_rate, groups=cfg.groups))


@layers.register("conv1d")
class Conv1D(_Conv, kinds.Conv1D):
    """y = activation(conv1d(x, kernel) + bias): [N, C, L] -> [N, filters, L']."""


@layers.register("conv2d")
class Conv2D(_BiasFused, kinds.Conv2D):
    """y = activation(conv2d(x, kernel) + bias): [N, C, H, W] -> [N, filters, H', W'] (the
    bias added in the convolution's kernel call: ops.conv2d_bias)."""


@layers.register("conv2d_transpose")
class Conv2DTranspose(_Conv, kinds.Conv2DTranspose):
    """y = activation(conv2d_transpose(x, kernel) + bias): [N, C, H, W] -> [N, filters, H',
    W'] with Keras' output size (kinds.layers_conv)."""

    def _conv(self, x):
        cfg = self.config
        return ops.conv2d_transpose(x, self.kernel, strides=cfg.strides, padding=cfg.padding,
                                    dilation=cfg.dilation_rate, groups=cfg.groups,
                                    output_shape=self._out[1:])


class _Pool(Layer):
    def call(self, x, training=False):
        cfg = self.config
        return self.op(x, cfg.pool_size, strides=cfg.strides, padding=cfg.padding)


@layers.register("max_pooling2d")
class MaxPooling2D(_Pool, kinds.MaxPooling2D):
    """Max over windows: [N, C, H, W] -> [N, C, H', W'] ('same' pads with -inf)."""

    op = staticmethod(ops.max_pool2d)


@layers.register("average_pooling2d")
class AveragePooling2D(_Pool, kinds.AveragePooling2D):
    """Mean over windows: [N, C, H, W] -> [N, C, H', W'] (padded cells not counted, as TF)."""

    op = staticmethod(ops.avg_pool2d)


@layers.register("global_average_pooling2d")
class GlobalAveragePooling2D(Layer, kinds.GlobalAveragePooling2D):
    """[N, C, H, W] -> [N, C] (or [N, C, 1, 1] with keepdims): mean over H, W."""

    def call(self, x, training=False):
        return ops.global_average_pool2d(x, keepdims=self.config.keepdims)


@layers.register("global_max_pooling2d")
class GlobalMaxPooling2D(Layer, kinds.GlobalMaxPooling2D):
    """[N, C, H, W] -> [N, C] (or [N, C, 1, 1] with keepdims): max over H, W."""

    def call(self, x, training=False):
        return ops.global_max_pool2d(x, keepdims=self.config.keepdims)


