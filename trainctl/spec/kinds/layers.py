"""Layer kinds: each layer type's YAML options (``Config``) and shape rule, without torch.

A layer type is written in two halves that share one name. Here, its contract with the
spec: the options it accepts and :meth:`LayerKind.compute_output_shape` (Keras' name), the
shape it gives for an input shape (batch axis excluded), raising
:class:`~trainctl.errors.ShapeError` for one it cannot take. In ``trainctl.nn.layers``, the
computation: a ``Layer`` subclass that also derives from its kind (``class Dense(Layer,
kinds.Dense)``), so its ``Config`` and shape rule are these; its ``build`` creates weights
and returns ``self.compute_output_shape(...)``. ``trainctl validate`` infers every shape
from here, without importing torch.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Optional

from pydantic import AfterValidator, Field, PositiveInt, WithJsonSchema

from trainctl.errors import ShapeError, fmt_shape  # noqa: F401 (re-exported)
from trainctl.registry import Registry
from trainctl.spec.config import Config
from trainctl.spec.kinds.names import activation_names, check_activation
from trainctl.spec.kinds.weights import InitializerOption, RegularizerOption

Shape = tuple[int, ...]

layer_kinds: Registry[type["LayerKind"]] = Registry("layer type")

_ACTIVATIONS = {"enum": activation_names.names()}  # what editors offer (trainctl schema)
ActivationName = Annotated[Optional[str], AfterValidator(check_activation),
                           WithJsonSchema({"anyOf": [_ACTIVATIONS, {"type": "null"}]})]


def shape_list(input_shapes) -> list[Shape]:
    """A multi-input layer's shapes as a list: one shape (a ``layers:`` chain gives one)
    becomes a one-item list."""
    items = list(input_shapes)
    if all(isinstance(d, int) for d in items):
        return [tuple(items)]
    return [tuple(s) for s in items]


class LayerConfig(Config):
    """Options every layer has: ``name`` (default: the type, then ``dense_1``, ...)."""

    name: Optional[str] = None


class LayerKind:
    """Base of layer kinds: ``Config`` and the shape rule (identity by default).

    ``min_inputs``/``max_inputs`` (None: no limit) say how many inputs a node of this type
    takes. A layer with ``max_inputs == 1`` takes one tensor: ``compute_output_shape(shape)``,
    ``build(shape)``, ``call(x)``. Any other (merge layers, multi_head_attention) takes a
    LIST: ``compute_output_shape([shape, ...])``, ``build([shape, ...])``,
    ``call([x, ...])``, in the order of the node's ``inputs:`` (docs/architecture.md,
    "Multi-input layers").
    """

    Config: ClassVar[type[LayerConfig]] = LayerConfig
    registered_name: ClassVar[str]
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[Optional[int]] = 1

    @classmethod
    def multi_input(cls) -> bool:
        """True when ``call``/``build``/``compute_output_shape`` take lists."""
        return cls.max_inputs != 1

    @classmethod
    def compute_output_shape(cls, input_shape: Shape, config: LayerConfig) -> Shape:
        """The output shape for ``input_shape`` (both without the batch axis).

        Raises ShapeError saying what the layer needs and what it got.
        """
        return tuple(input_shape)


@layer_kinds.register("dense")
class Dense(LayerKind):
    """[..., d] → [..., units]; needs at least one axis."""

    class Config(LayerConfig):
        units: PositiveInt
        activation: ActivationName = None
        use_bias: bool = True
        kernel_initializer: InitializerOption = "glorot_uniform"
        bias_initializer: InitializerOption = "zeros"
        kernel_regularizer: RegularizerOption = None
        bias_regularizer: RegularizerOption = None

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        if len(input_shape) < 1:
            raise ShapeError(f"dense needs inputs with a feature axis, got shape "
                             f"{fmt_shape(input_shape)}")
        return tuple(input_shape[:-1]) + (config.units,)


@layer_kinds.register("activation")
class Activation(LayerKind):
    """A named activation, elementwise: shape unchanged."""

    class Config(LayerConfig):
        activation: Annotated[str, AfterValidator(check_activation), WithJsonSchema(_ACTIVATIONS)]


@layer_kinds.register("dropout")
class Dropout(LayerKind):
    """Inverted dropout with probability ``rate`` in [0, 1): shape unchanged."""

    class Config(LayerConfig):
        rate: float = Field(ge=0.0, lt=1.0)


@layer_kinds.register("flatten")
class Flatten(LayerKind):
    """[d1, d2, ...] → [d1·d2·...]."""

    class Config(LayerConfig):
        pass

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        return (math.prod(input_shape),)
