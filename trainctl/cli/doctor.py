"""``trainctl doctor SPEC``: the smoke checks of one spec explained, plus data, initial
loss, scale and gradient diagnostics."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import typer

from trainctl.cli.common import DeviceOption, SetOption, out, say_auto_device, user_errors
from trainctl.cli.smoke import auto_device

MARK = {"pass": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def doctor_command(
    spec: Path = typer.Argument(..., help="The YAML spec to examine."),
    steps: int = typer.Option(20, "--steps", min=1, help="Training steps of the steps check."),
    grad_samples: int = typer.Option(32, "--grad-samples", min=1, help="Coordinates per "
                                     "variable checked against finite differences."),
    overfit_steps: int = typer.Option(200, "--overfit-steps", min=1, help="Most steps the "
                                      "overfit check may take to halve one batch's loss."),
    device: DeviceOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Is the model wired right? Each check says what it tests, what it found, and what a
    failure usually means. Exit code 2 if the spec is invalid (it does not validate or
    build), 1 if a later check fails (warnings do not)."""
    with user_errors():
        from trainctl.check import SmokeOptions, find_specs
        from trainctl.check.diagnose import doctor_spec

        from trainctl.errors import TrainctlError

        if spec.is_dir():
            raise TrainctlError(f"doctor examines one spec file; {str(spec)!r} is a directory")
        (path,) = find_specs([spec])
        if device is not None:
            from trainctl.backend import resolve_device

            resolve_device(device)
        report = doctor_spec(path, SmokeOptions(steps=steps, device=device,
                                                grad_samples=grad_samples,
                                                overfit_steps=overfit_steps,
                                                overrides=tuple(sets)))
        if auto_device(report):
            say_auto_device("auto", auto_device(report))
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            _print(report)
    if not report.ok:
        raise typer.Exit(2 if _invalid(report) else 1)


def _invalid(report) -> bool:
    """Whether the spec itself is the problem (README: a bad spec exits 2): its ``validate``
    or ``build`` check failed with a user error (one with a traceback is a bug: exit 1)."""
    return any(c.name in ("validate", "build") and c.status == "fail"
               and "traceback" not in c.values for c in report.checks)


def _print(report) -> None:
    out.print(f"{report.spec} ({report.name or 'invalid spec'})", markup=False)
    for c in report.checks:
        first, *rest = c.detail.splitlines() or [""]
        out.print(f"\n{MARK[c.status]} {c.name}: {first}", markup=False)
        for line in rest:
            out.print(f"       {line}", markup=False)
        if c.why:
            out.print(textwrap.fill(c.why, width=92, initial_indent="     why: ",
                                    subsequent_indent="          "), markup=False)
        if c.rows:
            out.print(_rows_table(c.rows))
    out.print(f"\n{report.summary()} ({report.seconds:.1f} s)", markup=False)


def _rows_table(rows: list[dict]) -> "Table":  # noqa: F821 (rich, imported here)
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
    table.add_column("     layer")
    table.add_column("tensor", no_wrap=True)
    for key in ("mean", "std", "max |x|", "zeros", "dead units"):
        table.add_column(key, justify="right")
    for r in rows:
        dead = f"{r['dead_units']:.0%}" if "dead_units" in r else ""
        table.add_row(f"     {r['layer']}", r["what"], f"{r['mean']:.3g}", f"{r['std']:.3g}",
                      f"{r['max_abs']:.3g}", f"{r['zeros']:.0%}", dead)
    return table
