"""Pydantic validation errors reworded for spec authors.

:func:`describe_errors` turns a ``pydantic.ValidationError`` into ``(path, message)``
pairs, where ``path`` is the key path into the validated data (union member tags that
pydantic adds to ``loc`` are dropped) and ``message`` reads e.g. ``expected an integer,
got 'ten'`` or ``unknown field; did you mean 'units'?``.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel, ValidationError

MISSING = "missing required field"

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "int_parsing_size": "an integer",
    "float_type": "a number", "float_parsing": "a number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "mapping_type": "a mapping",
    "none_required": "null",
}
_COMPARE = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
            "less_than_equal": "<="}
_CTX_BOUND = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt",
              "less_than_equal": "le"}


def show(value: Any) -> str:
    """Render a YAML value for a message: ``'ten'``, ``-3``, ``true``, ``null``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_errors(exc: ValidationError, data: Any, model: type[BaseModel] | None,
                    extra_names: Iterable[str] = ()) -> list[tuple[tuple, str]]:
    """Return one ``(path, message)`` per problem of ``exc``, in pydantic's order.

    ``data`` is what was validated (used to map pydantic's ``loc`` onto real keys),
    ``model`` the validated class (used to suggest field names for unknown keys) and
    ``extra_names`` further accepted top-level keys that were removed before validation.
    Several errors at one path from the members of a union are merged into one. A
    missing required field that an unknown key of the same mapping is suggested for
    (``unist: 32`` where ``units`` is required) is not reported: the unknown key says it.
    """
    out: list[tuple[tuple, str]] = []
    suggested: set[tuple] = set()  # paths of the fields unknown keys are suggested for
    for err in exc.errors():
        path = _data_path(data, err["loc"], err["type"] == "missing")
        if (err.get("ctx") or {}).get("key"):
            path += (err["ctx"]["key"],)
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            names = _field_names(model, err["loc"][:-1])
            if names is not None and len(err["loc"]) == 1:
                names += [n for n in extra_names if n not in names]
            close = _closest(key, names)
            if close is not None:
                suggested.add(path[:-1] + (close,))
            message = unknown_field(key, names)
        else:
            message = _message(err)
        out.append((path, message))
    out = [(path, message) for path, message in out
           if not (message == MISSING and path in suggested)]
    return _merge_unions(out)


def unknown_field(key: str, names: list[str] | None) -> str:
    """``unknown field; did you mean 'units'?``, or the list of valid names if none is close."""
    if names is None:
        return "unknown field"
    close = _closest(key, names)
    if close is not None:
        return f"unknown field; did you mean {close!r}?"
    if not names:
        return "unknown field; no fields are accepted here"
    return "unknown field; valid fields: " + ", ".join(names)


def _closest(key: str, names: list[str] | None) -> str | None:
    """The accepted name closest to the unknown ``key``, if one is close enough."""
    close = difflib.get_close_matches(key, names or [], n=1, cutoff=0.6)
    return close[0] if close else None


def _message(err: dict) -> str:
    kind, got, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return MISSING
    if kind in _EXPECTED:
        hint = " (quote it if you mean the text)" if (
            kind == "string_type" and isinstance(got, (bool, int, float))) else ""
        return f"expected {_EXPECTED[kind]}, got {show(got)}{hint}"
    if kind in _COMPARE:
        return f"must be {_COMPARE[kind]} {ctx[_CTX_BOUND[kind]]}, got {show(got)}"
    if kind == "multiple_of":
        return f"must be a multiple of {ctx['multiple_of']}, got {show(got)}"
    if kind == "finite_number":
        return f"must be a finite number, got {show(got)}"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        if " or " in expected:
            return f"expected one of {expected.replace(' or ', ', ')}, got {show(got)}"
        return f"expected {expected}, got {show(got)}"
    if kind in ("too_short", "too_long"):
        bound = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        word = "at least" if kind == "too_short" else "at most"
        return f"must have {word} {bound} item{'s' * (bound != 1)}, got {ctx['actual_length']}"
    if kind == "string_too_short":
        if ctx["min_length"] == 1:
            return "must not be empty"
        return f"must be at least {ctx['min_length']} characters long, got {show(got)}"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters long, got {show(got)}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']!r}, got {show(got)}"
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    if kind == "assertion_error":
        return err["msg"].removeprefix("Assertion failed, ")
    if kind.startswith("spec_"):
        return err["msg"]
    message = err["msg"][:1].lower() + err["msg"][1:]
    return message if isinstance(got, (dict, list)) else f"{message}, got {show(got)}"


def _data_path(data: Any, loc: tuple, missing: bool) -> tuple:
    """Map pydantic's ``loc`` onto keys that exist in ``data``, dropping union tags."""
    path: list = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif missing and i == len(loc) - 1:
            path.append(part)
    return tuple(path)


_EXPECT_GOT = re.compile(r"^expected (.*), got (.*?)( \(quote it if you mean the text\))?$")


def _merge_unions(problems: list[tuple[tuple, str]]) -> list[tuple[tuple, str]]:
    """Merge ``expected A, got X`` and ``expected B, got X`` at one path into ``A or B``."""
    out: list[tuple[tuple, str]] = []
    for path, message in problems:
        prev = out[-1] if out else None
        m_prev = _EXPECT_GOT.match(prev[1]) if prev and prev[0] == path else None
        m_new = _EXPECT_GOT.match(message)
        if m_prev and m_new and m_prev.group(2) == m_new.group(2):
            merged = f"expected {m_prev.group(1)} or {m_new.group(1)}, got {m_new.group(2)}"
            out[-1] = (path, merged)
        elif not (prev and prev == (path, message)):
            out.append((path, message))
    return out


def _field_names(model: Any, loc: tuple) -> list[str] | None:
    """The field names of the model found at ``loc`` inside ``model``, or None."""
    ann: Any = model
    for part in loc:
        cls = _find_model(ann)
        if cls is not None and isinstance(part, str) and part in cls.model_fields:
            ann = cls.model_fields[part].annotation
        else:
            ann = _item_type(ann, part)
    cls = _find_model(ann)
    if cls is None:
        return None
    return [field.alias or name for name, field in cls.model_fields.items()]


def _find_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if typing.get_origin(ann) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(ann):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


def _item_type(ann: Any, part: Any) -> Any:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            if arg is not type(None):
                return _item_type(arg, part)
    if origin in (list, set, frozenset, tuple) and args and isinstance(part, int):
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return ann  # a union member tag: stay on the same type
