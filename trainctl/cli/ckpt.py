"""``trainctl ckpt verify PATH`` and ``trainctl ckpt ls RUN``: check and list checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from trainctl.cli.common import out, user_errors

ckpt_app = typer.Typer(no_args_is_help=True, help="Verify and list checkpoints.")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _metrics(metrics: dict) -> str:
    keep = {k: v for k, v in metrics.items() if k not in ("epoch", "step", "seconds")}
    return "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in keep.items())


@ckpt_app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="A checkpoint directory or a run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Check every file of a checkpoint (or of every checkpoint of a run) against its
    MANIFEST of SHA-256 sums. Exit code 0 if all are valid, 1 if any is not."""
    with user_errors():
        from trainctl.io import check_path
        from trainctl.io.verify import describe

        result = check_path(path, hash_files=True)
        if as_json:
            typer.echo(json.dumps({"path": str(path), "ok": result.ok,
                                   "checkpoints": [describe(e) for e in result.entries],
                                   "pointers": result.pointers, "problems": result.problems}))
        else:
            for e in result.entries:
                if e.ok:
                    out.print(f"ok       {e.name}  step {e.step}", markup=False)
                else:
                    out.print(f"CORRUPT  {e.name}: {'; '.join(e.problems)}", markup=False)
            for problem in result.problems:
                out.print(f"problem  {problem}", markup=False)
            for name in result.leftovers:
                out.print(f"note     {name}: left by an interrupted write (removed when the run "
                          f"resumes)", markup=False)
            bad = sum(not e.ok for e in result.entries)
            out.print(f"{len(result.entries)} checkpoint(s), " +
                      ("all valid" if result.ok else f"{bad} corrupt" +
                       (f", {len(result.problems)} problem(s)" if result.problems else "")),
                      markup=False)
        if not result.ok:
            raise typer.Exit(1)


@ckpt_app.command("ls")
def ls(
    run: Path = typer.Argument(..., help="A run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """List a run's checkpoints: step, epoch, kind, size, the metrics of the last epoch
    before it, and which ones ``latest`` and ``best`` point at. Files are checked for
    presence only; use ``ckpt verify`` to check their contents."""
    with user_errors():
        from trainctl.io import check_path
        from trainctl.io.verify import describe

        result = check_path(run, hash_files=False)
        rows = [describe(e) for e in result.entries]
        marks = {}
        for pointer, name in result.pointers.items():
            marks.setdefault(name, []).append(pointer)
        if as_json:
            for row in rows:
                row["pointers"] = marks.get(row["name"], [])
            typer.echo(json.dumps({"run": str(run), "checkpoints": rows}))
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("checkpoint", "step", "epoch", "kind", "size", "", "metrics"):
            table.add_column(column, justify="right" if column in ("step", "epoch", "size")
                             else "left")
        for row in rows:
            status = ",".join(marks.get(row["name"], []))
            if not row["ok"]:
                status = "INCOMPLETE " + status
            table.add_row(row["name"], str(row["step"]), str(row["epoch"] or ""),
                          row["kind"] or "", _size(row["bytes"]), status,
                          _metrics(row["metrics"]))
        out.print(table)
