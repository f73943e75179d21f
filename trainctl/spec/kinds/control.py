"""The spec's ``schedule:`` and ``callbacks:`` checked against their kinds, without torch.

:func:`plan_control` is used by ``trainctl validate`` (through
:func:`trainctl.spec.kinds.check.check_references`) and by ``trainctl.train.prepare``, so
both report the same problems at the same places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainctl.errors import SpecError, SpecErrors, UnknownNameError
from trainctl.registry import Registry
from trainctl.spec.doc import SpecDoc
from trainctl.spec.kinds.callbacks import GUARD, CallbackKind, callback_kinds
from trainctl.spec.kinds.schedules import ScheduleKind, schedule_kinds


@dataclass
class ControlPlan:
    """``schedule``: ``(kind, config)`` or None; ``callbacks``: ``(kind, config, index)``
    per valid entry, in spec order, with the default non-finite guard (index None) appended
    when the spec lists none; ``errors``: every problem, located."""

    schedule: tuple[type[ScheduleKind], Any] | None = None
    callbacks: list[tuple[type[CallbackKind], Any, int | None]] = field(default_factory=list)
    errors: list[SpecError] = field(default_factory=list)


def plan_control(doc: SpecDoc) -> ControlPlan:
    """Validate ``schedule`` and each of ``callbacks`` in ``doc`` (entries the top-level
    schema rejects are skipped: it reports them). A callback type that may appear once
    (all but ``early_stopping``) listed twice is an error at its second entry."""
    plan = ControlPlan()
    entry = doc.get(("schedule",))
    if entry is not None:
        plan.schedule = _kind(doc, ("schedule",), entry, schedule_kinds, plan.errors)
    entries = doc.get(("callbacks",))
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        found = _kind(doc, ("callbacks", i), entry, callback_kinds, plan.errors)
        if found is None:
            continue
        kind, config = found
        name = kind.registered_name
        if name in seen and not kind.repeatable:
            plan.errors.append(doc.error(("callbacks", i, "type"),
                                         f"{name} is already given at callbacks[{seen[name]}]"))
            continue
        seen.setdefault(name, i)
        plan.callbacks.append((kind, config, i))
    if GUARD not in seen:
        guard = callback_kinds.get(GUARD)
        plan.callbacks.append((guard, guard.Config(), None))
    return plan


def _kind(doc: SpecDoc, path: tuple, entry: Any, registry: Registry, errors: list[SpecError]):
    """``(kind, config)`` for a ``{type: NAME, ...}`` entry or a bare ``NAME``, else None."""
    if isinstance(entry, str):
        entry = {"type": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return None
    try:
        kind = registry.get(entry["type"])
    except UnknownNameError as exc:
        errors.append(doc.error(path + ("type",), str(exc)))
        return None
    try:
        return kind, doc.validate(kind.Config, path)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        return None
