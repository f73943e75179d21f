"""One generic registry per kind of named thing (ops, layers, losses, optimizers, ...).

Names are set explicitly, in lower_snake_case, when a class or function is registered;
the YAML ``type:`` of a spec entry is that name. An unknown name raises
:class:`~trainctl.errors.UnknownNameError` listing the closest registered names.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, Generic, Iterator, TypeVar

from trainctl.errors import UnknownNameError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Generic[T]):
    """A name → object table for one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name may be registered once."""
        if not _NAME.match(name):
            raise ValueError(f"{self.kind} name {name!r} must be lower_snake_case")

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            try:
                obj.registered_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def get(self, name: object) -> T:
        """Return the object registered as ``name``; raises UnknownNameError otherwise."""
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        known = sorted(self._items)
        close = difflib.get_close_matches(str(name).lower(), known, n=3, cutoff=0.6)
        raise UnknownNameError(self.kind, name, close, known)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())
