"""Merge layer kinds: add, subtract, multiply, concatenate (Keras), torch-free.

They take a LIST of inputs (``min_inputs`` 2; subtract exactly 2), see
:class:`~trainctl.spec.kinds.layers.LayerKind`: ``compute_output_shape([s1, s2, ...])``.
"""

from __future__ import annotations

from trainctl.errors import ShapeError
from trainctl.spec.kinds.layers import LayerConfig, LayerKind, fmt_shape, layer_kinds, shape_list


def _shapes(input_shapes) -> str:
    return ", ".join(fmt_shape(s) for s in input_shapes)


class _Elementwise(LayerKind):
    """Inputs of one shape → that shape (no broadcasting, as Keras' merge layers)."""

    min_inputs = 2
    max_inputs = None

    class Config(LayerConfig):
        pass

    @classmethod
    def compute_output_shape(cls, input_shapes, config):
        shapes = shape_list(input_shapes)
        if len(shapes) < cls.min_inputs or (cls.max_inputs and len(shapes) > cls.max_inputs):
            want = (f"exactly {cls.min_inputs}" if cls.max_inputs == cls.min_inputs
                    else f"at least {cls.min_inputs}")
            raise ShapeError(f"{cls.registered_name} needs {want} inputs, got {len(shapes)}")
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"{cls.registered_name} needs inputs of one shape, got "
                             f"{_shapes(shapes)}")
        return shapes[0]


@layer_kinds.register("add")
class Add(_Elementwise):
    """x1 + x2 + ..."""


@layer_kinds.register("subtract")
class Subtract(_Elementwise):
    """x1 - x2 (exactly two inputs)."""

    max_inputs = 2


@layer_kinds.register("multiply")
class Multiply(_Elementwise):
    """x1 · x2 · ... elementwise."""


@layer_kinds.register("concatenate")
class Concatenate(LayerKind):
    """Joins inputs along ``axis`` (Keras: counting the batch axis as 0, default -1); the
    other axes must agree."""

    min_inputs = 2
    max_inputs = None

    class Config(LayerConfig):
        axis: int = -1

    @classmethod
    def compute_output_shape(cls, input_shapes, config):
        shapes = shape_list(input_shapes)
        if len(shapes) < 2:
            raise ShapeError(f"concatenate needs at least 2 inputs, got {len(shapes)}")
        rank = len(shapes[0]) + 1
        if any(len(s) + 1 != rank for s in shapes) or not -rank <= config.axis < rank \
                or config.axis % rank == 0:
            raise ShapeError(f"concatenate: cannot join {_shapes(shapes)} along axis "
                             f"{config.axis}")
        a = config.axis % rank - 1
        rest = {s[:a] + s[a + 1:] for s in shapes}
        if len(rest) != 1:
            raise ShapeError(f"concatenate along axis {config.axis} needs the other axes to "
                             f"agree, got {_shapes(shapes)}")
        out = list(shapes[0])
        out[a] = sum(s[a] for s in shapes)
        return tuple(out)
