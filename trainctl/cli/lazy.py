"""A Typer group that imports a command's module only when that command is used.

``trainctl validate`` must answer fast and without torch (issue 4), so the top-level app
names its commands by module (``{"validate": ("trainctl.cli.validate", "validate_command")}``)
instead of importing every command module up front. A command, or a sub-app such as
``ckpt``, is built by Typer exactly as ``app.command(name)(function)`` or
``app.add_typer(sub_app, name=name)`` would build it, on the first lookup of its name;
``--help`` looks every one up, so it still lists them all, in the table's order.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup

Target = tuple[str, str]  # (module, attribute): a command function or a typer.Typer


def _build(name: str, target: Target) -> Any:
    """The click command Typer makes of ``target`` registered under ``name``."""
    module, attribute = target
    obj = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(add_completion=False)
    holder.callback()(_no_options)  # a callback makes Typer build a group around ``name``
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name)
    else:
        holder.command(name)(obj)
    return typer.main.get_group(holder).commands[name]


def _no_options() -> None:
    """Holder group's callback (never invoked: only its ``name`` command is used)."""


class LazyCommands(MutableMapping):
    """``name -> click command``, building each from its target on first access."""

    def __init__(self, targets: dict[str, Target]):
        self._targets = dict(targets)
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = _build(name, self._targets[name])  # KeyError: no such command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._targets.setdefault(name, ("", ""))
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._targets[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


def lazy_group(targets: dict[str, Target]) -> type[TyperGroup]:
    """A TyperGroup class (for ``typer.Typer(cls=...)``) whose commands are ``targets``,
    in that order, imported on first use."""

    class LazyGroup(TyperGroup):
        def __init__(self, *args: Any, commands: Any = None, **kwargs: Any) -> None:
            super().__init__(*args, commands=None, **kwargs)
            self.commands = LazyCommands(targets)
            for name, command in dict(commands or {}).items():  # any registered eagerly
                self.commands[name] = command

        def list_commands(self, ctx: Any) -> list[str]:
            return list(self.commands)  # names only: listing imports nothing

    return LazyGroup
