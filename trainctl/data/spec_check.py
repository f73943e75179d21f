"""The data section's problems when the rest of the spec is invalid too.

``trainctl validate`` reports every error of a spec at once. :func:`plan_data` needs a
valid :class:`~trainctl.spec.schema.DataConfig`, which exists only once the whole spec
passes its schema; :func:`data_problems` checks what it can without that: the full plan
when the data section alone is valid, else each source and step entry (its registered
name and its options) on its own.
"""

from __future__ import annotations

from trainctl.data.pipeline import _base_dir, _Check, _source, _step, plan_data
from trainctl.errors import SpecError, SpecErrors
from trainctl.spec import SpecDoc
from trainctl.spec.schema import SECTIONS, DataConfig


def data_problems(doc: SpecDoc) -> list[SpecError]:
    """The located errors of ``doc``'s ``data`` section by trainctl.data's checks (unknown
    source, step or transform names, bad options, missing files...), skipping what the
    schema rejects (an entry without a string ``type``, a section that is not a mapping),
    which the schema's own errors report. Never raises SpecErrors."""
    data = doc.get(("data",))
    if not isinstance(data, dict):
        return []
    try:
        config = doc.validate(DataConfig, ("data",), exclude=())
    except SpecErrors:
        config = None
    if config is not None:
        try:
            plan_data(config, doc)
        except SpecErrors as exc:
            return list(exc.errors)
        except SpecError as exc:
            return [exc]
        return []
    check = _Check(doc, _base_dir(doc))
    _entry(check, data.get("source"), ("data", "source"), source=True)
    for name in SECTIONS:
        section = data.get(name)
        if not isinstance(section, dict):
            continue
        _entry(check, section.get("source"), ("data", name, "source"), source=True)
        steps = section.get("steps")
        for i, step in enumerate(steps if isinstance(steps, list) else []):
            _entry(check, step, ("data", name, "steps", i), source=False)
    return check.errors


def _entry(check: _Check, entry, path: tuple, source: bool) -> None:
    if isinstance(entry, dict) and isinstance(entry.get("type"), str):
        (_source(check, entry, path, check.base) if source else _step(check, entry, path))
