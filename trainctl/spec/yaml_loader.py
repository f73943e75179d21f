"""Safe YAML reading with YAML 1.2 core-schema scalars, duplicate-key checks and positions.

PyYAML follows YAML 1.1, where ``1e-3`` is a string, ``no`` is False and ``010`` is 8.
:class:`SpecLoader` resolves plain scalars by the YAML 1.2 core schema instead:

- null: ``~``, ``null``, ``Null``, ``NULL`` or nothing;
- bool: ``true``/``True``/``TRUE``/``false``/``False``/``FALSE`` only (``no``, ``on``
  ... stay strings);
- int: ``[-+]?[0-9]+`` (decimal, so ``010`` is 10), ``0o17``, ``0x1F``;
- float: ``1.5``, ``.5``, ``1e-3``, ``5E-4``, ``1e+3``, ``.inf``, ``-.inf``, ``.nan``;
- everything else (``12:30``, ``2024-01-01``, ``yes``) is a string.

Hostile input fails fast with a located SpecError, before anything is expanded: a file
over :data:`MAX_SPEC_BYTES`, values nested deeper than :data:`MAX_DEPTH`, and documents
whose values, counted with every alias expanded, exceed :data:`MAX_VALUES` (the "billion
laughs" bomb is refused while it is composed, from the sizes of its anchors, never built);
an alias inside its own anchor (a recursive structure) is refused too.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from trainctl.errors import SpecError, SpecErrors

KeyPath = tuple  # a key path: str mapping keys and int list indexes, e.g. ("model", "layers", 0)
Positions = dict  # KeyPath -> (line, col), both 1-based

_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")

MAX_SPEC_BYTES = 1_000_000  # pure-Python PyYAML reads roughly 0.1-0.5 MB/s: a few seconds at most
MAX_DEPTH = 64  # nesting levels of mappings and lists (real specs use under 10)
MAX_VALUES = 50_000  # scalars, keys and collections, every alias counted with its expansion


class LimitError(yaml.MarkedYAMLError):
    """A document over one of the limits above (reported without "invalid YAML")."""


class SpecLoader(yaml.SafeLoader):
    """A ``yaml.SafeLoader`` whose implicit scalar types follow the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._sizes: dict[int, int] = {}  # id(node) -> its value count with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> yaml.Node:
        """Compose one node, refusing it once a limit is passed (see the module docstring)."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:
                if id(node) not in self._sizes:
                    raise LimitError(None, None, f"alias *{event.anchor} lies inside its own "
                                     "anchor (a recursive structure)", event.start_mark)
                self._count(self._sizes[id(node)], event.start_mark)
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise LimitError(None, None, f"values nested more than {MAX_DEPTH} levels deep",
                             mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        self._count(1, mark)
        return node

    def _count(self, values: int, mark: yaml.Mark) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise LimitError(None, None, f"the document holds more than {MAX_VALUES:,} "
                             "values (aliases counted expanded); a spec is far smaller", mark)

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        try:
            if text.startswith(("0x", "0o")):
                return int(text[2:], 16 if text[1] == "x" else 8)
            return int(text, 10)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {text!r} as an integer", node.start_mark) from None

    def construct_core_float(self, node: yaml.ScalarNode) -> float:
        text = self.construct_scalar(node)
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if lowered == ".nan":
            return float("nan")
        try:
            return float(text)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {text!r} as a number", node.start_mark) from None


for _tag, _regexp, _first in [
    ("bool", _BOOL, "tTfF"),
    ("int", _INT, "-+0123456789"),
    ("float", _FLOAT, "-+.0123456789"),
    ("null", _NULL, ["~", "n", "N", ""]),
]:
    SpecLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp, list(_first))
SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_core_int)
SpecLoader.add_constructor("tag:yaml.org,2002:float", SpecLoader.construct_core_float)


class SpecDumper(yaml.SafeDumper):
    """A ``yaml.SafeDumper`` that quotes any string a YAML 1.1 or 1.2 reader would take
    for another type (``'1e-3'``, ``'no'``, ``'010'``), so dumped specs read back the same."""

    yaml_implicit_resolvers: dict = {}


for _first, _resolvers in SpecLoader.yaml_implicit_resolvers.items():
    SpecDumper.yaml_implicit_resolvers[_first] = list(_resolvers)
for _first, _resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items():
    SpecDumper.yaml_implicit_resolvers.setdefault(_first, []).extend(_resolvers)


def dump_yaml(data: Any) -> str:
    """Block-style YAML text for ``data`` (keys in their given order) that
    :func:`parse_yaml` reads back as equal data."""
    return yaml.dump(data, Dumper=SpecDumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def read_text(file: str) -> str:
    """Return the UTF-8 text of ``file``.

    Raises SpecError for a missing or unreadable file, a file over
    :data:`MAX_SPEC_BYTES` (checked while reading, so ``/dev/zero`` is refused too) and
    bytes that are not UTF-8.
    """
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("file not found", file=file) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", file=file) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror}", file=file) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"the file is larger than {MAX_SPEC_BYTES:,} bytes; a spec is a "
                        "small text file", file=file)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                        file=file, line=line, col=col) from None


def parse_yaml(text: str, file: str) -> tuple[Any, Positions, Positions]:
    """Parse one YAML document safely.

    Returns ``(data, value_positions, key_positions)``, where the position tables map a
    key path to the 1-based ``(line, col)`` of the value node and of the key node.
    Raises SpecError for a syntax error (at the problem's line and column) and
    SpecErrors for duplicate keys (every duplicate, naming both lines).
    """
    loader = None
    try:
        loader = SpecLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, {}, {}
        walker = _Walker(loader, file)
        walker.walk(node, ())
        if walker.errors:
            raise SpecErrors(walker.errors)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file) from None
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:  # bad explicit tags
        raise SpecError(f"invalid YAML value: {exc}", file=file) from None
    except RecursionError:  # a safety net: MAX_DEPTH stops deep nesting long before this
        raise SpecError("values nested too deeply", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, walker.values, walker.keys


class _Walker:
    """Records node positions by key path and finds duplicate keys, before construction."""

    def __init__(self, loader: SpecLoader, file: str):
        self.loader = loader
        self.file = file
        self.values: Positions = {}
        self.keys: Positions = {}
        self.errors: list[SpecError] = []
        self._seen: set[int] = set()

    def walk(self, node: yaml.Node, path: KeyPath) -> None:
        if path:
            self.values[path] = _pos(node)
        if id(node) in self._seen:  # an alias: its children were walked at the anchor
            return
        self._seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, path + (index,))
        elif isinstance(node, yaml.MappingNode):
            self._walk_mapping(node, path)

    def _walk_mapping(self, node: yaml.MappingNode, path: KeyPath) -> None:
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a non-scalar key: construction reports it
            key = self.loader.construct_object(key_node)
            if key in first_line:
                line, col = _pos(key_node)
                self.errors.append(SpecError(
                    f"duplicate key (first given on line {first_line[key]})",
                    file=self.file, line=line, col=col, key=render_path(path + (key,))))
                continue
            first_line[key] = _pos(key_node)[0]
            self.keys[path + (key,)] = _pos(key_node)
            self.walk(value_node, path + (key,))


def render_path(path: KeyPath) -> str | None:
    """Render a key path for messages: ``('model', 'layers', 1, 'units')`` gives
    ``model.layers[1].units``; the empty path gives None."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _yaml_error(exc: yaml.YAMLError, text: str, file: str) -> SpecError:
    if isinstance(exc, LimitError):
        mark = exc.problem_mark
        return SpecError(exc.problem, file=file, line=mark.line + 1, col=mark.column + 1)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if message == "found character '\\t' that cannot start any token":
            message = "found a tab character; YAML indents with spaces only"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return SpecError(f"invalid YAML: {message}", file=file, line=line, col=col)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return SpecError(f"invalid YAML: control character #x{exc.character:04x} not allowed",
                         file=file, line=line, col=col)
    return SpecError(f"invalid YAML: {exc}", file=file)
