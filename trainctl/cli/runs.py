"""``trainctl runs list [DIR]`` and ``trainctl runs compare A B``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from trainctl.cli.common import out, user_errors

runs_app = typer.Typer(no_args_is_help=True, help="List and compare run directories.")
STATUS_STYLE = {"completed": "green", "running": "yellow", "failed": "red",
                "interrupted": "magenta"}  # rich drops colours under NO_COLOR


def _duration(seconds) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


@runs_app.command("list")
def list_command(
    root: Path = typer.Argument(Path("runs"), metavar="[DIR]", help="A folder of run "
                                "directories (default runs/), or one run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """A table of runs: status, epochs, best values (validation when there is one), duration."""
    with user_errors():
        from trainctl.io.runs import find_runs, summarize

        summaries = [summarize(p) for p in find_runs(root)]
        if as_json:
            out.print(json.dumps({"root": str(root), "runs": [s.to_dict() for s in summaries]}),
                      markup=False, highlight=False, soft_wrap=True)
            return
        if not summaries:
            out.print(f"no runs in {root}", markup=False)
            return
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False)
        for column in ("run", "status", "epochs", "best", "duration"):
            table.add_column(column, justify="right" if column in ("epochs", "duration") else "left")
        for s in summaries:
            best = "  ".join(f"{k} {_value(b['value'])} (e{b['epoch']})" for k, b in s.best.items())
            table.add_row(Path(s.path).name, Text(s.status, STATUS_STYLE.get(s.status, "")),
                          str(s.epochs), best,
                          _duration(s.duration_seconds))
        out.print(table)


@runs_app.command("compare")
def compare_command(
    a: Path = typer.Argument(..., metavar="A", help="A run directory."),
    b: Path = typer.Argument(..., metavar="B", help="Another run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """The final values of two runs side by side, and how their specs differ."""
    with user_errors():
        from trainctl.io.runs import compare

        result = compare(a, b)
        if as_json:
            out.print(json.dumps(result.to_dict(), default=str), markup=False, highlight=False,
                      soft_wrap=True)
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False, title="final values")
        for column in ("", Path(result.a.path).name, Path(result.b.path).name, "b - a"):
            table.add_column(column, justify="left" if not column else "right")
        for key, va, vb in result.rows:
            diff = vb - va if all(isinstance(v, (int, float)) for v in (va, vb)) else None
            table.add_row(key, _value(va), _value(vb), "" if diff is None else f"{diff:+.4g}")
        out.print(table)
        if not result.changes:
            out.print("the specs are the same", markup=False)
            return
        changes = Table(box=None, pad_edge=False, title="spec differences")
        for column in ("key", "a", "b"):
            changes.add_column(column)
        for key, va, vb in result.changes:
            changes.add_row(key, "(absent)" if va is None else str(va),
                            "(absent)" if vb is None else str(vb))
        out.print(changes)
