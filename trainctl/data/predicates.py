"""Named filter predicates: what a spec's ``{type: filter, predicate: ...}`` keeps.

A spec names a predicate and its options; it never gives code (nothing of the spec is
evaluated). Each predicate is a class registered in :data:`predicates` with a ``Config``
(its YAML options), built with the spec's class names (to read ``label_in`` values given
as names), and called like a ``filter`` predicate on one ``(features, label)`` element:
it returns one bool.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Literal, Optional, Union

from trainctl.data.lazy import numpy as np
from pydantic import Field, model_validator

from trainctl import spec
from trainctl.errors import DataError
from trainctl.registry import Registry

#: name → Predicate subclass; the names are the spec's ``predicate`` types
predicates: Registry[type["Predicate"]] = Registry("filter predicate")


class Predicate:
    """A named predicate built from its validated ``config``; ``where`` (the step's key
    path, e.g. ``data.train.steps[1]``) prefixes its DataErrors."""

    class Config(spec.Config):
        """No options."""

    def __init__(self, config: Any, class_names: tuple[str, ...] | None = None, where: str = "filter"):
        self.config, self.where = config, where

    def describe(self) -> str:
        name = getattr(type(self), "registered_name", type(self).__name__)
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{name}({options})"

    def check(self, element_spec: Any) -> None:
        """DataError (prefixed by ``where``) when the predicate cannot fit elements of
        ``element_spec`` (a ``(features, label)`` pair of TensorSpecs), known before
        reading; nothing by default."""

    def __call__(self, features: Any, label: Any = None) -> bool:
        raise NotImplementedError


@predicates.register("label_in")
class LabelIn(Predicate):
    """The label is one of ``values``: class indices, or class names of the source
    (DataError naming the step when a name is not a class)."""

    class Config(spec.Config):
        values: list[Union[int, str]] = Field(min_length=1)

    def __init__(self, config: Any, class_names: tuple[str, ...] | None = None, where: str = "filter"):
        super().__init__(config, class_names, where)
        wanted = []
        for value in config.values:
            if isinstance(value, str):
                if not class_names or value not in class_names:
                    known = f"the classes are {list(class_names)}" if class_names else \
                        "the source has no class names; give class indices"
                    raise DataError(f"{where}: predicate label_in: {value!r} is not a class; {known}")
                value = class_names.index(value)
            wanted.append(value)
        self.values = np.array(sorted(set(wanted)))

    def __call__(self, features: Any, label: Any = None) -> bool:
        return bool(np.isin(np.asarray(label), self.values).all())


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq,
    "!=": operator.ne, ">=": operator.ge, ">": operator.gt}


@predicates.register("compare")
class Compare(Predicate):
    """``component op value``: the label (``on: label``) or feature ``index`` of the
    features vector (``on: features``; flat index into the features array) compared
    with ``value`` by ``op`` (``<``, ``<=``, ``==``, ``!=``, ``>=``, ``>``). A NaN
    compares false (except ``!=``), as in IEEE 754."""

    class Config(spec.Config):
        on: Literal["features", "label"] = "features"
        index: Optional[int] = Field(None, ge=0)
        op: Literal["<", "<=", "==", "!=", ">=", ">"]
        value: float

        @model_validator(mode="after")
        def _index_with_features(self) -> "Compare.Config":
            if self.on == "features" and self.index is None:
                raise ValueError("on: features needs index (which feature value to compare)")
            if self.on == "label" and self.index is not None:
                raise ValueError("index is for on: features only")
            return self

    def __init__(self, config: Any, class_names: tuple[str, ...] | None = None, where: str = "filter"):
        super().__init__(config, class_names, where)
        self.op = _OPS[config.op]

    def check(self, element_spec: Any) -> None:
        """DataError when ``index`` is past the feature values of a known feature shape."""
        if self.config.on != "features" or not isinstance(element_spec, tuple):
            return
        shape = getattr(element_spec[0], "shape", None)
        if shape is None or any(s is None for s in shape):
            return
        size = int(np.prod(shape, dtype=np.int64))
        if self.config.index >= size:
            raise DataError(f"{self.where}: predicate compare: index {self.config.index} is past "
                            f"the {size} feature values")

    def __call__(self, features: Any, label: Any = None) -> bool:
        if self.config.on == "label":
            return bool(self.op(np.asarray(label), self.config.value))
        flat = np.asarray(features).reshape(-1)
        if self.config.index >= flat.size:
            raise DataError(f"{self.where}: predicate compare: index {self.config.index} is past "
                            f"the {flat.size} feature values")
        if flat.dtype.kind in "USO":
            raise DataError(f"{self.where}: predicate compare: the features are text")
        return bool(self.op(flat[self.config.index], self.config.value))


@predicates.register("finite")
class Finite(Predicate):
    """Every value of the features, of the label or of both (``on``, default ``all``) is
    finite: elements holding NaN or ±inf are dropped. Text passes."""

    class Config(spec.Config):
        on: Literal["features", "label", "all"] = "all"

    def __call__(self, features: Any, label: Any = None) -> bool:
        parts = {"features": [features], "label": [label], "all": [features, label]}[self.config.on]
        for part in parts:
            array = np.asarray(part)
            if array.dtype.kind in "fc" and not np.isfinite(array).all():
                return False
        return True
