"""``base: other.yaml``: a spec built on another one, by deep merge.

The child's values win. Mappings are merged key by key, at every depth; anything else
(a list, a scalar, a mapping given where the base has a list) replaces the base's value
whole, so ``model.layers`` in a child is the child's list only. Each value keeps the
position of the file it came from, so an error points into the right file.

The base is named relative to the folder of the spec that names it, may have a base of
its own (up to :data:`MAX_BASES` deep), and a spec that reaches itself again is an error
naming the chain (``a.yaml -> b.yaml -> a.yaml``).
"""

from __future__ import annotations

import os
from typing import Any

BASE_KEY = "base"
MAX_BASES = 16  # length of a base chain; deeper is surely a mistake


def base_target(file: str, base: str) -> str:
    """The path of ``base`` as named in ``file``: relative to ``file``'s folder (the
    working directory for names like ``<spec>``), normalised (``a/../b.yaml`` → ``b.yaml``)."""
    folder = "" if file.startswith("<") else os.path.dirname(file)
    return os.path.normpath(os.path.join(folder, os.path.expanduser(base)))


def find_cycle(chain: tuple[str, ...], target: str) -> str | None:
    """``'a.yaml -> b.yaml -> a.yaml'`` if ``target`` is already in ``chain`` (the files
    from the first spec down to the one naming ``target``; compared as real paths)."""
    real = [os.path.realpath(f) for f in chain]
    here = os.path.realpath(target)
    if here not in real:
        return None
    return " -> ".join([*chain[real.index(here):], target])


def deep_merge(base: Any, child: Any, path: tuple = (),
               replaced: list[tuple] | None = None) -> Any:
    """``child`` merged over ``base`` (neither is modified; containers are shared, not
    copied). Paths where a child value replaced a base value are appended to ``replaced``."""
    if isinstance(base, dict) and isinstance(child, dict):
        out = dict(base)
        for key, value in child.items():
            out[key] = deep_merge(base[key], value, path + (key,), replaced) if key in base else value
        return out
    if replaced is not None:
        replaced.append(path)
    return child


def merge_positions(base: dict, child: dict, replaced: list[tuple]) -> dict:
    """Position table of a merge: the base's entries, less those under a replaced path,
    updated with the child's."""
    out = {path: where for path, where in base.items()
           if not any(path[:len(r)] == r for r in replaced)}
    out.update(child)
    return out
