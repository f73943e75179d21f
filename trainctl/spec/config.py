"""`Config`: the pydantic base class of every configuration read from a spec.

A registered layer, loss, optimizer or data source declares its options as::

    class Dense(Layer):
        class Config(trainctl.spec.Config):
            units: PositiveInt
            activation: str | None = None

and validates its entry with ``doc.validate(Dense.Config, ("model", "layers", 3))``.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class Config(BaseModel):
    """Base of spec configs: unknown keys are errors, and a YAML ``true``/``false`` is
    never taken as a number (pydantic alone would read ``units: true`` as 1).

    Booleans still accept ``yes``/``no``/``on``/``off`` given as strings (the loader keeps
    them as strings), so ``nesterov: no`` gives False.
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)  # schemas built on first use: fast imports

    @field_validator("*", mode="before")
    @classmethod
    def reject_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """Raise an ``int_type``/``float_type`` error for a bool given to a number field."""
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            kinds = _scalar_types(cls.model_fields[info.field_name].annotation)
            if bool not in kinds and object not in kinds:
                if int in kinds:
                    raise PydanticCustomError("int_type", "Input should be a valid integer")
                if float in kinds:
                    raise PydanticCustomError("float_type", "Input should be a valid number")
        return value


def _scalar_types(ann: Any) -> set[type]:
    """The plain classes a field annotation accepts at its top level (``Any`` → object)."""
    if ann is Any:
        return {object}
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(ann)
        args = args[:1] if origin is typing.Annotated else args
        return set().union(*(_scalar_types(arg) for arg in args))
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(ann)}
    return {ann} if isinstance(ann, type) else set()
