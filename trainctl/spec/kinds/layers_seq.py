"""Sequence layer kinds (Keras names and arguments), torch-free: embedding,
positional_embedding, multi_head_attention, lstm, gru.

Sequences are [steps, features] after the batch axis (Keras' layout).
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, PositiveInt

from trainctl.errors import ShapeError
from trainctl.spec.kinds.layers import (ActivationName, LayerConfig, LayerKind, fmt_shape,
                                        layer_kinds, shape_list)
from trainctl.spec.kinds.weights import InitializerOption, RegularizerOption


def _sequence(name: str, shape) -> None:
    if len(shape) != 2:
        raise ShapeError(f"{name} needs sequences [steps, features], got shape {fmt_shape(shape)}")


@layer_kinds.register("embedding")
class Embedding(LayerKind):
    """Integer ids [...] in [0, input_dim) → vectors [..., output_dim] (a lookup table
    [input_dim, output_dim], Keras' default initializer U(-0.05, 0.05))."""

    class Config(LayerConfig):
        input_dim: PositiveInt
        output_dim: PositiveInt
        embeddings_initializer: InitializerOption = "random_uniform"
        embeddings_regularizer: RegularizerOption = None

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        return tuple(input_shape) + (config.output_dim,)


@layer_kinds.register("positional_embedding")
class PositionalEmbedding(LayerKind):
    """[steps, dim] → [steps, dim]: adds a position vector to each step (steps <=
    ``sequence_length``). ``learned: true`` (default): a trainable table [sequence_length,
    dim] (keras_hub's PositionEmbedding, glorot_uniform); false: the fixed sinusoids of
    Vaswani et al. 2017 (sin on even features, cos on odd, base 10000)."""

    class Config(LayerConfig):
        sequence_length: PositiveInt
        learned: bool = True
        initializer: InitializerOption = "glorot_uniform"

    @classmethod
    def compute_output_shape(cls, input_shape, config):
        _sequence("positional_embedding", input_shape)
        if input_shape[0] > config.sequence_length:
            raise ShapeError(f"positional_embedding: {input_shape[0]} steps exceed "
                             f"sequence_length {config.sequence_length}")
        return tuple(input_shape)


@layer_kinds.register("multi_head_attention")
class MultiHeadAttention(LayerKind):
    """Scaled dot-product attention with ``num_heads`` heads (Vaswani et al. 2017; Keras'
    MultiHeadAttention). Inputs: [query] (self-attention), [query, value] or [query, value,
    key]; query [Tq, dq], value [Tv, dv], key [Tv, dk] → [Tq, dq]. ``use_causal_mask``:
    query step i sees key steps <= i."""

    min_inputs = 1
    max_inputs = 3

    class Config(LayerConfig):
        num_heads: PositiveInt
        key_dim: PositiveInt
        value_dim: Optional[PositiveInt] = None
        dropout: float = Field(0.0, ge=0.0, lt=1.0)
        use_bias: bool = True
        use_causal_mask: bool = False
        kernel_initializer: InitializerOption = "glorot_uniform"
        bias_initializer: InitializerOption = "zeros"
        kernel_regularizer: RegularizerOption = None
        bias_regularizer: RegularizerOption = None

    @classmethod
    def compute_output_shape(cls, input_shapes, config):
        shapes = shape_list(input_shapes)
        if not 1 <= len(shapes) <= 3:
            raise ShapeError(f"multi_head_attention takes 1 to 3 inputs (query, value, key), "
                             f"got {len(shapes)}")
        for s in shapes:
            _sequence("multi_head_attention", s)
        query, value = shapes[0], shapes[1] if len(shapes) > 1 else shapes[0]
        key = shapes[2] if len(shapes) > 2 else value
        if key[0] != value[0]:
            raise ShapeError(f"multi_head_attention: key {fmt_shape(key)} and value "
                             f"{fmt_shape(value)} need the same number of steps")
        return query


class RecurrentConfig(LayerConfig):
    """Options of lstm / gru (Keras' defaults)."""

    units: PositiveInt
    activation: ActivationName = "tanh"
    recurrent_activation: ActivationName = "sigmoid"
    use_bias: bool = True
    return_sequences: bool = False
    kernel_initializer: InitializerOption = "glorot_uniform"
    recurrent_initializer: InitializerOption = "orthogonal"
    bias_initializer: InitializerOption = "zeros"
    kernel_regularizer: RegularizerOption = None
    recurrent_regularizer: RegularizerOption = None
    bias_regularizer: RegularizerOption = None


class _Recurrent(LayerKind):
    @classmethod
    def compute_output_shape(cls, input_shape, config):
        _sequence(cls.registered_name, input_shape)
        return (input_shape[0], config.units) if config.return_sequences else (config.units,)


@layer_kinds.register("lstm")
class LSTM(_Recurrent):
    """Long short-term memory (Hochreiter & Schmidhuber 1997) over [steps, features] →
    [units] (last state) or [steps, units] (``return_sequences``). Gates in Keras' (and
    torch's) order i, f, c, o; ``unit_forget_bias`` starts the forget bias at 1."""

    class Config(RecurrentConfig):
        unit_forget_bias: bool = True


@layer_kinds.register("gru")
class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al. 2014) in Keras' reset_after form (torch's, cuDNN's):
    gates z, r, h in Keras' order, candidate tanh(x W_h + b_h + r ⊙ (h U_h + b'_h))."""

    class Config(RecurrentConfig):
        pass
