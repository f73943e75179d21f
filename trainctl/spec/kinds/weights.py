"""Weight options shared by layers, torch-free: initializers (a name, or a mapping for one
that takes arguments) and kernel/bias regularizers.

YAML forms::

    kernel_initializer: he_normal                       # a registered name
    bias_initializer: {type: constant, value: 0.1}      # Keras' Constant(value)
    kernel_initializer: {type: orthogonal, gain: 1.0}   # Keras' Orthogonal(gain)
    kernel_regularizer: {l1: 0.0, l2: 1.0e-4}           # Keras' L1L2: l1·Σ|w| + l2·Σw²
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, WithJsonSchema

from trainctl.spec.config import Config
from trainctl.spec.kinds.names import check_initializer, initializer_names

InitializerName = Annotated[str, AfterValidator(check_initializer),
                            WithJsonSchema({"enum": initializer_names.names()})]


class ConstantInitializer(Config):
    """``{type: constant, value: v}``: every entry v (Keras' Constant; default 0.0)."""

    type: Literal["constant"]
    value: float = 0.0


class OrthogonalInitializer(Config):
    """``{type: orthogonal, gain: g}``: g times a random orthogonal matrix (Keras' Orthogonal)."""

    type: Literal["orthogonal"]
    gain: float = 1.0


def _initializer_tag(value) -> str | None:
    """Which form a ``*_initializer`` value has: 'name', or its mapping's ``type``."""
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict):
        return value.get("type") if value.get("type") in ("constant", "orthogonal") else None
    return getattr(value, "type", None)


InitializerOption = Annotated[
    Union[Annotated[InitializerName, Tag("name")],
          Annotated[ConstantInitializer, Tag("constant")],
          Annotated[OrthogonalInitializer, Tag("orthogonal")]],
    Discriminator(_initializer_tag, custom_error_type="initializer",
                  custom_error_message="an initializer is a name (glorot_uniform, ...) or a "
                                       "mapping with type: constant or type: orthogonal")]
"""What a ``*_initializer`` key takes: a name or one of the mappings above (one error
message for a bad value, not one per form)."""


class Regularizer(Config):
    """A weight penalty added to the training loss: l1·Σ|w| + l2·Σw² (Keras' L1L2, which
    has no 1/2 factor on l2). Both default to 0; negative values are errors."""

    l1: float = Field(0.0, ge=0.0)
    l2: float = Field(0.0, ge=0.0)


RegularizerOption = Optional[Regularizer]
