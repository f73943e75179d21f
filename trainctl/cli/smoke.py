"""``trainctl smoke SPEC_OR_DIR ...``: fast wiring checks of every spec, for CI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import DeviceOption, SetOption, err, out, say_auto_device, user_errors

MARK = {"pass": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def smoke_command(
    paths: list[Path] = typer.Argument(..., help="Spec files, or directories of *.yaml specs."),
    steps: int = typer.Option(20, "--steps", min=1, help="Training steps per spec."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=0.001, metavar="SECONDS",
                                            help="Time limit per spec (a slower spec fails)."),
    junit: Optional[Path] = typer.Option(None, "--junit", metavar="FILE",
                                         help="Also write a JUnit XML report."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    device: DeviceOption = None,
    overfit_steps: int = typer.Option(200, "--overfit-steps", min=1, help="Most steps the "
                                      "overfit check may take to halve one batch's loss."),
    sets: SetOption = [],
) -> None:
    """Check that each spec validates, builds, gets gradients everywhere, trains, overfits one
    batch, round-trips a checkpoint and evaluates. Exit code 1 if any spec fails."""
    with user_errors():
        from trainctl.check import SmokeOptions, find_specs, junit_xml, smoke_spec
        from trainctl.check.results import write_atomic
        from trainctl.errors import OutputError

        files = find_specs(paths)
        if junit is not None and not junit.parent.is_dir():  # before minutes of checks
            raise OutputError(f"cannot write {str(junit)!r}: folder {str(junit.parent)!r} "
                              "does not exist; nothing was run")
        if device is not None:
            from trainctl.backend import resolve_device

            resolve_device(device)  # an unknown device is a command-line error, not N failures
        options = SmokeOptions(steps=steps, timeout=timeout, device=device,
                               overfit_steps=overfit_steps, overrides=tuple(sets))
        reports = []
        for f in files:
            report = smoke_spec(f, options)
            if auto_device(report) and not any(map(auto_device, reports)):  # said once
                say_auto_device("auto", auto_device(report))
            reports.append(report)
            if not as_json:
                err.print(f"{'ok  ' if report.ok else 'FAIL'} {f}  {report.summary()}  "
                          f"({report.seconds:.1f} s)", markup=False)
        if junit is not None:
            write_atomic(junit, junit_xml(reports))
        failed = [r for r in reports if not r.ok]
        if as_json:
            typer.echo(json.dumps({"ok": not failed, "passed": len(reports) - len(failed),
                                   "failed": len(failed), "options": vars(options),
                                   "specs": [r.to_dict() for r in reports]}))
        else:
            _print_table(reports)
    if failed:
        raise typer.Exit(1)


def auto_device(report) -> str | None:
    """The device ``auto`` took in a smoke or doctor report (its build check's values),
    or None when the spec named its device or did not build."""
    build = next((c for c in report.checks if c.name == "build"), None)
    return build.values.get("device") if build and build.values.get("device_auto") else None


def _print_table(reports) -> None:
    from rich.table import Table

    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("spec", overflow="fold")
    table.add_column("result")
    table.add_column("checks", overflow="fold")
    table.add_column("time", justify="right")
    for r in reports:
        table.add_row(r.spec, "ok" if r.ok else "FAIL", r.summary(), f"{r.seconds:.1f} s")
    out.print(table)
    for r in reports:
        for c in r.checks:
            if c.status in ("fail", "warn"):
                first, *rest = c.detail.splitlines() or [""]
                out.print(f"{MARK[c.status]} {r.spec} {c.name}: {first}", markup=False)
                for line in rest:
                    out.print(f"    {line}", markup=False)
    bad = sum(not r.ok for r in reports)
    total = sum(r.seconds for r in reports)
    out.print(f"{len(reports) - bad} of {len(reports)} specs passed ({total:.1f} s)",
              markup=False)
