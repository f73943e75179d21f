"""Core layers: dense, activation, dropout, flatten (Keras names and arguments).

Options and shape rules are in :mod:`trainctl.spec.kinds.layers`.
"""

from __future__ import annotations

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import generator
from trainctl.nn.activations import activations
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds


@layers.register("dense")
class Dense(Layer, kinds.Dense):
    """y = activation(x @ kernel + bias) over the last axis: [..., d] -> [..., units].

    kernel [d, units] (glorot_uniform by default), bias [units] (zeros).
    """

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg = self.config
        self.kernel = self.add_weight("kernel", (input_shape[-1], cfg.units), cfg.kernel_initializer,
                                      device, regularizer=cfg.kernel_regularizer)
        self.bias = (self.add_weight("bias", (cfg.units,), cfg.bias_initializer, device,
                                     regularizer=cfg.bias_regularizer) if cfg.use_bias else None)
        self._activation = activations.get(cfg.activation or "linear")
        return out

    def call(self, x, training=False):
        y = ops.matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self._activation(y)


@layers.register("activation")
class Activation(Layer, kinds.Activation):
    """Applies a named activation elementwise; shape unchanged."""

    def build(self, input_shape, device="cpu"):
        self._fn = activations.get(self.config.activation)
        return tuple(input_shape)

    def call(self, x, training=False):
        return self._fn(x)


@layers.register("dropout")
class Dropout(Layer, kinds.Dropout):
    """Inverted dropout: in training each value is zeroed with probability ``rate`` and the
    rest scaled by 1/(1 - rate); identity at evaluation (Srivastava et al. 2014)."""

    def call(self, x, training=False):
        rate = self.config.rate
        if not training or rate == 0.0:
            return x
        keep = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        keep.bernoulli_(1.0 - rate, generator=generator(x.device))
        return x * Tensor(keep.mul_(1.0 / (1.0 - rate)))


@layers.register("flatten")
class Flatten(Layer, kinds.Flatten):
    """Collapses all axes after the batch axis: [b, d1, d2, ...] -> [b, d1·d2·...]."""

    def call(self, x, training=False):
        return ops.flatten(x, start_axis=1)
