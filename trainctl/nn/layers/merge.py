"""Merge layers: add, subtract, multiply, concatenate. Each takes a LIST of tensors of the
shapes its kind accepts (trainctl.spec.kinds.layers_merge) and returns one tensor."""

from __future__ import annotations

from functools import reduce

from trainctl.autodiff import ops
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds


@layers.register("add")
class Add(Layer, kinds.Add):
    """x1 + x2 + ... (same shapes)."""

    def call(self, inputs, training=False):
        return reduce(lambda a, b: a + b, inputs)


@layers.register("subtract")
class Subtract(Layer, kinds.Subtract):
    """x1 - x2."""

    def call(self, inputs, training=False):
        a, b = inputs
        return a - b


@layers.register("multiply")
class Multiply(Layer, kinds.Multiply):
    """x1 ⊙ x2 ⊙ ... elementwise."""

    def call(self, inputs, training=False):
        return reduce(lambda a, b: a * b, inputs)


@layers.register("concatenate")
class Concatenate(Layer, kinds.Concatenate):
    """Joins the inputs along ``axis`` (counting the batch axis as 0)."""

    def call(self, inputs, training=False):
        return ops.concat(list(inputs), axis=self.config.axis)
