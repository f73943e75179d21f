"""Reshaping and normalization layer kinds (Keras names and arguments), torch-free."""

from __future__ import annotations

import math
from typing import Union

from pydantic import Field, PositiveInt

from trainctl.errors import ShapeError
from trainctl.spec.kinds.layers import LayerConfig, LayerKind, fmt_shape, layer_kinds
from trainctl.spec.kinds.weights import InitializerOption, RegularizerOption


@layer_kinds.register("reshape")
class Reshape(LayerKind):
    """[d1, d2, ...] → ``target_shape`` (batch excluded; one entry may be -1, inferred)."""

    class Config(LayerConfig):
        target_shape: tuple[int, ...]

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        target = tuple(config.target_shape)
        size = math.prod(input_shape)
        unknown = [i for i, d in enumerate(target) if d == -1]
        if len(unknown) > 1 or any(d == 0 or d < -1 for d in target):
            raise ShapeError(f"reshape: target_shape {list(target)} may hold positive sizes "
                             f"and at most one -1")
        known = math.prod(d for d in target if d != -1)
        if unknown and known and size % known == 0:
            target = tuple(size // known if d == -1 else d for d in target)
        if math.prod(target) != size or not target:
            raise ShapeError(f"reshape: cannot reshape {fmt_shape(input_shape)} ({size} values) "
                             f"to target_shape {list(config.target_shape)}")
        return target


@layer_kinds.register("permute")
class Permute(LayerKind):
    """Reorders the axes after the batch axis: ``dims`` is a permutation of 1..rank,
    1-based as in Keras (``dims: [2, 1]`` swaps the two axes of [a, b] → [b, a])."""

    class Config(LayerConfig):
        dims: tuple[PositiveInt, ...]

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        if sorted(config.dims) != list(range(1, len(input_shape) + 1)):
            raise ShapeError(f"permute: dims {list(config.dims)} must be a permutation of "
                             f"1..{len(input_shape)} for input shape {fmt_shape(input_shape)}")
        return tuple(input_shape[d - 1] for d in config.dims)


def _axis(name: str, axis: int, input_shape) -> int:
    """``axis`` counted as Keras does (0 is the batch axis; negative from the end) → index
    into ``input_shape`` (batch excluded); ShapeError if it is the batch axis or outside."""
    rank = len(input_shape) + 1
    a = axis % rank if -rank <= axis < rank else None
    if a is None or a == 0:
        raise ShapeError(f"{name}: axis {axis} is not a feature axis of inputs "
                         f"[batch,{fmt_shape(input_shape)[1:]}")
    return a - 1


@layer_kinds.register("batch_normalization")
class BatchNormalization(LayerKind):
    """Shape unchanged. ``axis`` (Keras' meaning, counting the batch axis as 0) is the
    feature/channel axis: default 1, the channel axis of channels-first [C, H, W] inputs and
    the feature axis of [features] (Keras' channels_first setting; Keras' default -1 is for
    channels-last). ``momentum`` 0.99 and ``epsilon`` 1e-3 as Keras."""

    class Config(LayerConfig):
        axis: int = 1
        momentum: float = Field(0.99, ge=0.0, le=1.0)
        epsilon: float = Field(1e-3, gt=0.0)
        center: bool = True
        scale: bool = True
        beta_initializer: InitializerOption = "zeros"
        gamma_initializer: InitializerOption = "ones"
        moving_mean_initializer: InitializerOption = "zeros"
        moving_variance_initializer: InitializerOption = "ones"

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        _axis("batch_normalization", config.axis, input_shape)
        return tuple(input_shape)


@layer_kinds.register("layer_normalization")
class LayerNormalization(LayerKind):
    """Shape unchanged; per-example statistics over ``axis`` (Keras: default -1, the last
    axis; an int or a list, counting the batch axis as 0)."""

    class Config(LayerConfig):
        axis: Union[int, tuple[int, ...]] = -1
        epsilon: float = Field(1e-3, gt=0.0)
        center: bool = True
        scale: bool = True
        beta_initializer: InitializerOption = "zeros"
        gamma_initializer: InitializerOption = "ones"
        beta_regularizer: RegularizerOption = None
        gamma_regularizer: RegularizerOption = None

    @classmethod
    def axes(cls, input_shape, config) -> tuple[int, ...]:
        """The normalized axes as indices into ``input_shape`` (batch excluded), sorted."""
        axis = config.axis if isinstance(config.axis, tuple) else (config.axis,)
        out = sorted({_axis("layer_normalization", a, input_shape) for a in axis})
        return tuple(out)

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        cls.axes(input_shape, config)
        return tuple(input_shape)
