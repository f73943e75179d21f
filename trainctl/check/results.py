"""What the checks return: one :class:`Check` per check, one :class:`SpecReport` per spec,
and their JSON and JUnit XML forms (the library returns data; the CLI prints it)."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainctl.io.atomic import write_atomically

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)


@dataclass
class Check:
    """The outcome of one check on one spec.

    ``status``: pass, warn (a doubt; does not fail the spec), fail, or skip (a check it
    needs failed first). ``detail``: one line saying what was found; ``why``: what the
    check tests and what a failure usually means (``trainctl doctor`` prints it);
    ``seconds``: wall-clock time; ``values``: the measured numbers (JSON-able), and
    ``rows`` a table of them when the check has one (doctor's per-layer scales).
    """

    name: str
    status: str
    detail: str = ""
    why: str = ""
    seconds: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "status": self.status, "detail": self.detail,
               "seconds": round(self.seconds, 4), "values": _jsonable(self.values)}
        if self.rows:
            out["rows"] = _jsonable(self.rows)
        return out


@dataclass
class SpecReport:
    """Every check of one spec file (``spec``: the path as given; ``name``: the spec's
    ``name:`` once it validated, else None)."""

    spec: str
    name: str | None = None
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings and skips do not fail a spec)."""
        return not any(c.status == FAIL for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def check(self, name: str) -> Check:
        """The check called ``name``; KeyError if it did not run."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        """'7/7 passed', or the failed checks' names ('2/7 failed: overfit, gradients')."""
        counted = [c for c in self.checks if c.status != SKIP]
        if self.ok:
            warned = [c.name for c in self.checks if c.status == WARN]
            note = f" ({len(warned)} warning{'s' * (len(warned) != 1)})" if warned else ""
            return f"{len(counted)}/{len(self.checks)} passed{note}"
        names = ", ".join(c.name for c in self.failed)
        return f"{len(self.failed)}/{len(self.checks)} failed: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": self.name, "ok": self.ok,
                "seconds": round(self.seconds, 4), "checks": [c.to_dict() for c in self.checks]}


def _jsonable(value: Any) -> Any:
    """Floats that JSON cannot hold (NaN, ±inf) become strings; containers recurse."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def junit_xml(reports: list[SpecReport], suite_name: str = "trainctl smoke") -> str:
    """The reports as JUnit XML (the schema Jenkins, GitLab and GitHub Actions read): one
    ``<testsuite>`` per spec, one ``<testcase>`` per check with ``<failure>`` or
    ``<skipped>``; a warning is a passing test case with its detail in ``<system-out>``."""
    root = ET.Element("testsuites", name=suite_name)
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for r in reports:
        suite = ET.SubElement(root, "testsuite", name=r.name or Path(r.spec).stem,
                              file=r.spec, time=f"{r.seconds:.3f}", errors="0")
        counts = {"tests": len(r.checks), "failures": len(r.failed),
                  "skipped": sum(c.status == SKIP for c in r.checks)}
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
        for c in r.checks:
            case = ET.SubElement(suite, "testcase", name=c.name, classname=r.spec,
                                 time=f"{c.seconds:.3f}")
            if c.status == FAIL:
                first = c.detail.splitlines()[0] if c.detail else c.name
                failure = ET.SubElement(case, "failure", message=first, type="SmokeCheckFailed")
                failure.text = c.detail
            elif c.status == SKIP:
                ET.SubElement(case, "skipped", message=c.detail)
            elif c.detail:
                ET.SubElement(case, "system-out").text = f"{c.status}: {c.detail}"
    for key, n in totals.items():
        root.set(key, str(n))
    root.set("errors", "0")
    root.set("time", f"{sum(r.seconds for r in reports):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and a rename, so a reader
    never sees a partial report (:func:`trainctl.io.atomic.write_atomically`). Raises
    OutputError (a TrainctlError) when the file cannot be written."""
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
