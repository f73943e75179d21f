"""Command-line overrides: ``--set optimizer.learning_rate=3e-4``.

An override names a key path and gives a value in YAML (read by the same YAML 1.2 loader
as spec files, so ``3e-4`` is a number and ``no`` a string; ``[1,8,8]`` and ``{type: sgd}``
work too). The path is dotted keys with ``[i]`` list indexes, ``model.layers[0].units``; a
key applied to a list picks the item whose ``name`` is that key, so
``model.nodes.conv1.filters`` addresses the node named ``conv1``. Missing mappings on the
way are created (``--set train.epochs=3`` works without a ``train:`` section).

Overrides are applied to the document before it is validated, so a value is typed by the
schema like any other, and an error in it names the override instead of a file line:
``--set optimizer.learning_rate=fast: expected a number, got 'fast'``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec.messages import show
from trainctl.spec.yaml_loader import KeyPath, parse_yaml, render_path

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_SEGMENT = re.compile(rf"({_NAME})((?:\[-?[0-9]+\])*)")
_INDEX = re.compile(r"\[(-?[0-9]+)\]")


@dataclass(frozen=True)
class Override:
    """One override: ``path`` (str keys, int list indexes), ``value``, and ``label``, the
    text the user wrote, which stands for the file in messages.

    ``names_path`` says the label spells the path out (``--set a.b=1``), so a message about
    that very value need not repeat the key; ``note`` is added to such messages.
    """

    path: KeyPath
    value: Any
    label: str
    names_path: bool = True
    note: str = ""


def parse_key_path(text: str) -> KeyPath:
    """``'model.layers[0].units'`` → ``('model', 'layers', 0, 'units')``.

    Raises ValueError for anything else (empty segments, bad names, unclosed brackets).
    """
    path: list = []
    for segment in text.split("."):
        m = _SEGMENT.fullmatch(segment)
        if m is None:
            raise ValueError(f"{segment!r} is not a key (letters, digits, '_' or '-', "
                             "starting with a letter), optionally followed by [index]")
        path.append(m.group(1))
        path.extend(int(i) for i in _INDEX.findall(m.group(2)))
    return tuple(path)


def parse_override(text: str) -> Override:
    """Read ``KEY.PATH=VALUE`` as given to ``--set``; raises SpecError naming it."""
    label = f"--set {text}"
    key, sep, raw = text.partition("=")
    if not sep:
        raise SpecError("expected KEY=VALUE, e.g. optimizer.learning_rate=3e-4", file=label)
    try:
        path = parse_key_path(key.strip())
    except ValueError as exc:
        raise SpecError(f"bad key path: {exc}", file=label) from None
    try:
        value = parse_yaml(raw, label)[0]
    except SpecError as exc:
        raise SpecError(f"cannot read the value: {exc.message}", file=label) from None
    except SpecErrors as exc:  # duplicate keys in a flow mapping
        why = "; ".join(f"{e.key}: {e.message}" for e in exc.errors)
        raise SpecError(f"cannot read the value: {why}", file=label) from None
    return Override(path, value, label)


def flag_override(flag: str, path: KeyPath, value: Any) -> Override:
    """An override from a dedicated option such as ``--epochs 3`` (for ``train.epochs``)."""
    return Override(tuple(path), value, f"{flag} {value}", names_path=False,
                    note=" (given on the command line)")


def apply_override(data: dict, override: Override) -> tuple[dict, KeyPath]:
    """Return ``(new_data, concrete_path)``: ``data`` with the override's value set (the
    containers on the path are copied, so values shared through YAML aliases elsewhere are
    untouched) and the path with item names replaced by list indexes.

    Raises SpecError (located at the override) when the path cannot be followed.
    """
    root = dict(data)
    node: Any = root
    concrete: list = []
    path = override.path
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, dict) and isinstance(part, str):
            if last:
                node[part] = override.value
            else:
                child = node.get(part)
                child = {} if child is None else _copy(child, override, path[:i + 1])
                node[part] = child
                node = child
            concrete.append(part)
            continue
        if isinstance(node, list):
            index = _list_index(node, part, override, tuple(concrete))
            if last:
                node[index] = override.value
            else:
                node[index] = _copy(node[index], override, tuple(concrete) + (index,))
                node = node[index]
            concrete.append(index)
            continue
        where = render_path(tuple(concrete)) or "the top level"
        what = "a mapping" if isinstance(node, dict) else show(node)
        raise SpecError(f"cannot set {render_path(path)}: {where} is {what}, which has no "
                        f"{'index' if isinstance(part, int) else 'key'} {part!r}",
                        file=override.label)
    return root, tuple(concrete)


def _copy(value: Any, override: Override, path: KeyPath) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    raise SpecError(f"cannot set {render_path(override.path)}: {render_path(path)} is "
                    f"{show(value)}, not a mapping or a list", file=override.label)


def _list_index(items: list, part: Any, override: Override, where: KeyPath) -> int:
    """The index ``part`` names in ``items``: an int, or the ``name`` of an item."""
    if isinstance(part, int):
        if -len(items) <= part < len(items):
            return part % len(items)
        raise SpecError(f"index {part} is out of range: {render_path(where)} has "
                        f"{len(items)} item{'s' * (len(items) != 1)}", file=override.label)
    names = [item.get("name") for item in items if isinstance(item, dict)]
    names = [n for n in names if isinstance(n, str)]
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
    hint = (f"; did you mean {close[0]!r}?" if close else
            f"; named items: {', '.join(names)}" if names else
            "; its items have no names (use an index, e.g. [0])")
    raise SpecError(f"{render_path(where)} has no item named {part!r}{hint}",
                    file=override.label)


FLAGS = {"seed": ("--seed", ("seed",)), "epochs": ("--epochs", ("train", "epochs")),
         "device": ("--device", ("device",)), "execution": ("--execution", ("execution",)),
         "precision": ("--precision", ("precision",))}


def flag_overrides(**values: Any) -> list[Override]:
    """Overrides for the dedicated options in :data:`FLAGS` (``seed=3`` is ``--seed 3``,
    for ``seed``); None values are left out."""
    return [flag_override(FLAGS[name][0], FLAGS[name][1], value)
            for name, value in values.items() if value is not None]
