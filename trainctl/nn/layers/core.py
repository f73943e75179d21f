"""Core layers: dense, activation, dropout, flatten (Keras names and arguments)."""

from __future__ import annotations

import math
from typing import Annotated, Optional

import torch
from pydantic import AfterValidator, Field, PositiveInt

from trainctl.autodiff import ops
from trainctl.autodiff.ops.core import fmt_shape
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import generator
from trainctl.errors import ShapeError
from trainctl.nn.activations import activations, check_activation
from trainctl.nn.initializers import check_initializer
from trainctl.nn.layers.base import Layer, LayerConfig, layers

ActivationName = Annotated[Optional[str], AfterValidator(check_activation)]
InitializerName = Annotated[str, AfterValidator(check_initializer)]


@layers.register("dense")
class Dense(Layer):
    """y = activation(x @ kernel + bias) over the last axis: [..., d] -> [..., units].

    kernel [d, units] (glorot_uniform by default), bias [units] (zeros).
    """

    class Config(LayerConfig):
        units: PositiveInt
        activation: ActivationName = None
        use_bias: bool = True
        kernel_initializer: InitializerName = "glorot_uniform"
        bias_initializer: InitializerName = "zeros"

    def build(self, input_shape, device="cpu"):
        if len(input_shape) < 1:
            raise ShapeError(f"dense {self.name!r}: needs inputs with a feature axis, got shape "
                             f"{fmt_shape(input_shape)}")
        cfg = self.config
        self.kernel = self.add_weight("kernel", (input_shape[-1], cfg.units), cfg.kernel_initializer, device)
        self.bias = self.add_weight("bias", (cfg.units,), cfg.bias_initializer, device) if cfg.use_bias else None
        self._activation = activations.get(cfg.activation or "linear")
        return tuple(input_shape[:-1]) + (cfg.units,)

    def call(self, x, training=False):
        y = ops.matmul(x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self._activation(y)


@layers.register("activation")
class Activation(Layer):
    """Applies a named activation elementwise; shape unchanged."""

    class Config(LayerConfig):
        activation: Annotated[str, AfterValidator(check_activation)]

    def build(self, input_shape, device="cpu"):
        self._fn = activations.get(self.config.activation)
        return tuple(input_shape)

    def call(self, x, training=False):
        return self._fn(x)


@layers.register("dropout")
class Dropout(Layer):
    """Inverted dropout: in training each value is zeroed with probability ``rate`` and the
    rest scaled by 1/(1 - rate); identity at evaluation (Srivastava et al. 2014)."""

    class Config(LayerConfig):
        rate: float = Field(ge=0.0, lt=1.0)

    def build(self, input_shape, device="cpu"):
        return tuple(input_shape)

    def call(self, x, training=False):
        rate = self.config.rate
        if not training or rate == 0.0:
            return x
        keep = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        keep.bernoulli_(1.0 - rate, generator=generator(x.device))
        return x * Tensor(keep.mul_(1.0 / (1.0 - rate)))


@layers.register("flatten")
class Flatten(Layer):
    """Collapses all axes after the batch axis: [b, d1, d2, ...] -> [b, d1·d2·...]."""

    class Config(LayerConfig):
        pass

    def build(self, input_shape, device="cpu"):
        return (math.prod(input_shape),)

    def call(self, x, training=False):
        return ops.flatten(x, start_axis=1)
