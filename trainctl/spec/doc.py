"""`SpecDoc`: a loaded YAML spec that knows where each of its values was written.

A document may come from several places: its file, the ``base:`` files it inherits from
(:mod:`trainctl.spec.inherit`) and command-line overrides (:mod:`trainctl.spec.overrides`).
Every value keeps its :class:`Origin`, so an error names the file and line it came from,
or the ``--set`` that gave it.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, NamedTuple, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec.inherit import (BASE_KEY, MAX_BASES, base_target, deep_merge, find_cycle,
                                   merge_positions)
from trainctl.spec.messages import MISSING, describe_errors, show
from trainctl.spec.overrides import Override, apply_override, parse_override
from trainctl.spec.yaml_loader import KeyPath, Positions, parse_yaml, read_text, render_path

M = TypeVar("M", bound=BaseModel)


class Origin(NamedTuple):
    """Where a value was written: ``file`` (or an override's label such as ``--set a=1``),
    1-based ``line`` and ``col`` (None for an override), and for an override whether its
    label names the key path already (``exact``) and a ``note`` for messages."""

    file: str
    line: int | None = None
    col: int | None = None
    exact: bool = False
    note: str = ""


class SpecDoc:
    """One spec: ``file`` (the name the user gave), ``data`` (plain dicts, lists and
    scalars, after inheritance and overrides) and the origin of each value and key.

    ``values`` and ``keys`` map key paths to ``(line, col)`` in ``file`` (what
    :func:`~trainctl.spec.yaml_loader.parse_yaml` returns) or to :class:`Origin` objects.
    """

    def __init__(self, file: str, data: dict, values: Positions | None = None,
                 keys: Positions | None = None):
        self.file = file
        self.data = data
        self._values = {p: _origin(file, w) for p, w in (values or {}).items()}
        self._keys = {p: _origin(file, w) for p, w in (keys or {}).items()}
        self.files: list[str] = [file]  # every file and override the data came from

    @classmethod
    def from_text(cls, text: str, file: str = "<spec>", _chain: tuple[str, ...] = ()) -> "SpecDoc":
        """Parse YAML ``text`` (from ``file``) and merge in its ``base:`` chain.

        Raises SpecError / SpecErrors like :func:`load_doc`.
        """
        data, values, keys = parse_yaml(text, file)
        if data is None:
            raise SpecError("the file is empty; expected a mapping of spec fields", file=file)
        if not isinstance(data, dict):
            raise SpecError(f"the top level must be a mapping of spec fields, got {show(data)}",
                            file=file)
        doc = cls(file, data, values, keys)
        return doc._with_base(_chain) if BASE_KEY in data else doc

    # ---- where values come from ---------------------------------------------------------
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

    def where(self, path: KeyPath) -> Origin:
        """The origin of the value at ``path``, or of its nearest ancestor that has one
        (the document's file, without a line, at the top level)."""
        return self._find(self._values, tuple(path))[0]

    def origin_file(self, path: KeyPath) -> str:
        """The file (or override label) the value at ``path`` came from; relative file
        names inside a value (data files, say) are best read relative to its folder."""
        return self.where(path).file

    def locate(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The ``(line, col)`` of the value at ``path``, or of its nearest ancestor that
        has one; ``(None, None)`` at the top level. See :meth:`where` for the file."""
        origin = self.where(path)
        return origin.line, origin.col

    def locate_key(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The ``(line, col)`` of the key that introduces ``path``; falls back to
        :meth:`locate` (list items and absent keys have no key of their own)."""
        path = tuple(path)
        origin = self._keys.get(path) or self.where(path)
        return origin.line, origin.col

    def overridden(self, path: KeyPath) -> bool:
        """True when a command-line override (``--set``, ``--execution`` ...) gave the value
        at exactly ``path``, rather than a spec file."""
        origin = self._values.get(tuple(path))
        return origin is not None and origin.line is None and origin.file != self.file

    def without(self, key: str) -> "SpecDoc":
        """A copy of this document without the top-level ``key`` (origins kept)."""
        return self._copy({k: v for k, v in self.data.items() if k != key})

    def _find(self, table: dict, path: KeyPath) -> tuple[Origin, KeyPath | None]:
        probe = path
        while probe:
            if probe in table:
                return table[probe], probe
            probe = probe[:-1]
        return Origin(self.file), None

    def error(self, path: KeyPath, message: str, at: str | None = None) -> SpecError:
        """A SpecError for the value at ``path``, keyed like ``model.layers[1].units``.

        ``at`` says where it points: ``"value"``, ``"key"`` or ``"parent"`` (the key of
        the enclosing mapping; no line at the top level). By default an ``unknown
        field`` message points at the key, a ``missing required field`` message at the
        parent and anything else at the value. An error at a value given by an override
        is located at the override (``--set a.b=x: expected ...``).
        """
        path = tuple(path)
        if at is None:
            at = ("key" if message.startswith("unknown field")
                  else "parent" if message.startswith(MISSING) else "value")
        if at == "key" and path in self._keys:
            origin, found = self._keys[path], path
        elif at == "parent":
            parent = path[:-1]
            origin, found = ((self._keys.get(parent), parent) if parent in self._keys
                             else self._find(self._values, parent)) if parent else (Origin(self.file), None)
        else:
            origin, found = self._find(self._values, path)
        key = None if origin.exact and found == path else render_path(path)
        return SpecError(message + origin.note, file=origin.file, line=origin.line,
                         col=origin.col, key=key)

    def sorted(self, errors: Iterable[SpecError]) -> SpecErrors:
        """SpecErrors in order: by file (this file, its bases, then overrides), then line."""
        return sorted_errors(errors, self.files)

    # ---- validation ---------------------------------------------------------------------
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
            raise self.sorted(self.error(path + rel, msg) for rel, msg in problems) from None

    # ---- building documents -------------------------------------------------------------
    def with_overrides(self, overrides: Sequence[Override | str]) -> "SpecDoc":
        """A new document with ``overrides`` applied in order (``KEY=VALUE`` strings are
        read with :func:`~trainctl.spec.overrides.parse_override`).

        Raises SpecErrors naming every override that cannot be read or applied.
        """
        doc, errors = self._copy(self.data), []
        for item in overrides:
            try:
                ov = parse_override(item) if isinstance(item, str) else item
                doc.data, path = apply_override(doc.data, ov)
            except SpecError as exc:
                errors.append(exc)
                continue
            doc._replace(path, ov)
        if errors:
            raise SpecErrors(errors)
        return doc

    def _replace(self, path: KeyPath, ov: Override) -> None:
        """Record that ``ov`` gave the value at ``path`` (and everything below it)."""
        below = Origin(ov.label, note=ov.note)
        for table in (self._values, self._keys):
            for p in [p for p in table if p[:len(path)] == path]:
                del table[p]
        self._values.update({path + sub: below for sub in _sub_paths(self.get(path))})
        self._keys.update({path + sub: below for sub in _sub_paths(self.get(path)) if sub})
        self._values[path] = self._keys[path] = Origin(ov.label, exact=ov.names_path,
                                                       note=ov.note)
        for k in range(1, len(path)):  # mappings the override created on its way
            if path[:k] not in self._values:
                self._values[path[:k]] = self._keys[path[:k]] = below
        if ov.label not in self.files:
            self.files.append(ov.label)

    def _with_base(self, chain: tuple[str, ...]) -> "SpecDoc":
        """This document merged over the base it names (see :mod:`trainctl.spec.inherit`)."""
        name, chain = self.data[BASE_KEY], chain + (self.file,)
        if not isinstance(name, str) or not name.strip():
            raise SpecErrors([self.error((BASE_KEY,), "expected the file name of a base "
                                                     f"spec, got {show(name)}")])
        target = base_target(self.file, name)
        cycle = find_cycle(chain, target)
        if cycle is not None:
            raise SpecErrors([self.error((BASE_KEY,), f"inheritance cycle: {cycle}")])
        if len(chain) > MAX_BASES:
            raise SpecErrors([self.error((BASE_KEY,), f"more than {MAX_BASES} bases in a chain")])
        if not os.path.isfile(target):
            why = "is a directory" if os.path.isdir(target) else "not found"
            raise SpecErrors([self.error((BASE_KEY,), f"base spec {target!r} {why}")])
        base = SpecDoc.from_text(read_text(target), target, chain)
        child = {k: v for k, v in self.data.items() if k != BASE_KEY}
        replaced: list[tuple] = []
        merged = base._copy(deep_merge(base.data, child, (), replaced))
        mine = {p: w for p, w in self._values.items() if p[:1] != (BASE_KEY,)}
        merged._values = merge_positions(base._values, mine, replaced)
        mine = {p: w for p, w in self._keys.items() if p[:1] != (BASE_KEY,)}
        merged._keys = merge_positions(base._keys, mine, replaced)
        merged.file, merged.files = self.file, [self.file, *base.files]
        return merged

    def _copy(self, data: dict) -> "SpecDoc":
        doc = SpecDoc(self.file, data)
        doc._values, doc._keys, doc.files = dict(self._values), dict(self._keys), list(self.files)
        return doc


def load_doc(file: str | os.PathLike, overrides: Sequence[Override | str] = ()) -> SpecDoc:
    """Read and parse a spec file, merge its ``base:`` chain and apply ``overrides``.

    Raises SpecError when the file is missing, unreadable, over the size limit, not UTF-8,
    not valid YAML, empty, or not a mapping at the top level; SpecErrors for duplicate
    keys, a bad ``base:`` (missing file, cycle) and overrides that cannot be applied.
    """
    file = os.fspath(file)
    doc = SpecDoc.from_text(read_text(file), file)
    return doc.with_overrides(overrides) if overrides else doc


def sorted_errors(errors: Iterable[SpecError], files: Sequence[str] = ()) -> SpecErrors:
    """SpecErrors ordered by file (in the order of ``files``, others after), then line;
    errors without a line come last in their file."""
    rank = {f: i for i, f in enumerate(files)}
    return SpecErrors(sorted(errors, key=lambda e: (rank.get(e.file, len(rank)), e.line is None,
                                                    e.line or 0, e.col or 0)))


def _origin(file: str, where: Any) -> Origin:
    return where if isinstance(where, Origin) else Origin(file, *where)


def _sub_paths(value: Any, prefix: KeyPath = ()) -> Iterable[KeyPath]:
    """Every key path inside ``value``, itself (``()``) included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else ()
    for key, item in items:
        yield from _sub_paths(item, prefix + (key,))


_ABSENT = object()
