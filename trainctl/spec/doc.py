"""`SpecDoc`: a loaded YAML spec that knows where each of its values was written."""

from __future__ import annotations

import os
from typing import Any, Iterable, TypeVar

from pydantic import BaseModel, ValidationError

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec.messages import MISSING, describe_errors, show
from trainctl.spec.yaml_loader import KeyPath, Positions, parse_yaml, read_text, render_path

M = TypeVar("M", bound=BaseModel)


class SpecDoc:
    """One spec file: its ``file`` name (as the user gave it), its ``data`` (plain
    dicts, lists and scalars) and the 1-based positions of its values and keys."""

    def __init__(self, file: str, data: dict, values: Positions | None = None,
                 keys: Positions | None = None):
        self.file = file
        self.data = data
        self._values = dict(values or {})
        self._keys = dict(keys or {})

    @classmethod
    def from_text(cls, text: str, file: str = "<spec>") -> "SpecDoc":
        """Parse YAML ``text``; raises SpecError / SpecErrors like :func:`load_doc`."""
        data, values, keys = parse_yaml(text, file)
        if data is None:
            raise SpecError("the file is empty; expected a mapping of spec fields", file=file)
        if not isinstance(data, dict):
            raise SpecError(f"the top level must be a mapping of spec fields, got {show(data)}",
                            file=file)
        return cls(file, data, values, keys)

    def get(self, path: KeyPath, default: Any = None) -> Any:
        """The value at key path ``path`` (``()`` is the whole document), or ``default``."""
        node: Any = self.data
        for part in path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return default
        return node

    def locate(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The ``(line, col)`` of the value at ``path``, or of its nearest ancestor that
        has one; ``(None, None)`` at the top level."""
        path = tuple(path)
        while path:
            if path in self._values:
                return self._values[path]
            path = path[:-1]
        return None, None

    def locate_key(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The ``(line, col)`` of the key that introduces ``path``; falls back to
        :meth:`locate` (list items and absent keys have no key of their own)."""
        path = tuple(path)
        return self._keys.get(path) or self.locate(path)

    def error(self, path: KeyPath, message: str, at: str | None = None) -> SpecError:
        """A SpecError for the value at ``path``, keyed like ``model.layers[1].units``.

        ``at`` says where it points: ``"value"``, ``"key"`` or ``"parent"`` (the key of
        the enclosing mapping; no line at the top level). By default an ``unknown
        field`` message points at the key, a ``missing required field`` message at the
        parent and anything else at the value.
        """
        path = tuple(path)
        if at is None:
            at = ("key" if message.startswith("unknown field")
                  else "parent" if message.startswith(MISSING) else "value")
        if at == "key":
            line, col = self.locate_key(path)
        elif at == "parent":
            line, col = self.locate_key(path[:-1]) if len(path) > 1 else (None, None)
        else:
            line, col = self.locate(path)
        return SpecError(message, file=self.file, line=line, col=col, key=render_path(path))

    def validate(self, config_cls: type[M], path: KeyPath = (),
                 exclude: Iterable[str] = ("type",)) -> M:
        """Validate the mapping at ``path`` with ``config_cls``, without the keys in
        ``exclude``, and return the instance.

        A bare string at ``path`` (e.g. ``optimizer: adam``) counts as an empty mapping
        when ``"type"`` is excluded. Raises SpecErrors holding every problem found, each
        located in the file and worded for people (see :mod:`trainctl.spec.messages`).
        """
        path, exclude = tuple(path), tuple(exclude)
        sub = self.get(path, _ABSENT)
        if isinstance(sub, str) and "type" in exclude:
            sub = {}
        if sub is _ABSENT:
            raise SpecErrors([self.error(path, MISSING)])
        if not isinstance(sub, dict):
            raise SpecErrors([self.error(path, f"expected a mapping, got {show(sub)}")])
        given = {key: value for key, value in sub.items() if key not in exclude}
        try:
            return config_cls.model_validate(given)
        except ValidationError as exc:
            problems = describe_errors(exc, given, config_cls, exclude)
            raise sorted_errors(self.error(path + rel, msg) for rel, msg in problems) from None


def load_doc(file: str | os.PathLike) -> SpecDoc:
    """Read and parse a spec file.

    Raises SpecError when the file is missing, unreadable, not UTF-8, not valid YAML,
    empty, or not a mapping at the top level; SpecErrors for duplicate keys.
    """
    file = os.fspath(file)
    return SpecDoc.from_text(read_text(file), file)


def sorted_errors(errors: Iterable[SpecError]) -> SpecErrors:
    """SpecErrors with ``errors`` in file order; errors without a line come last."""
    return SpecErrors(sorted(errors, key=lambda e: (e.line is None, e.line or 0, e.col or 0)))


_ABSENT = object()
