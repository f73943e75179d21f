"""``trainctl plot RUN -o curves.png``: loss and metric curves of a run, train vs validation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import out, user_errors


def plot_command(
    run: Path = typer.Argument(..., metavar="RUN", help="A run directory."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", metavar="FILE",
                                help="The image to write (.png, .svg or .pdf)."),
    width: Optional[int] = typer.Option(None, "--width", min=100, max=10000, metavar="PX",
                                        help="Width in pixels (default 400 per panel, up to "
                                        "3 panels a row)."),
    height: Optional[int] = typer.Option(None, "--height", min=100, max=10000, metavar="PX",
                                         help="Height in pixels (default 300 per row)."),
) -> None:
    """Draw a run's loss and metric curves (train and validation, against the step)."""
    with user_errors():
        from trainctl.errors import TrainctlError
        from trainctl.io.plot import default_size, panels, plot_records, save_figure
        from trainctl.io.runs import read_records, summarize

        records = read_records(run)
        if not records:
            raise TrainctlError(f"{str(run)!r} has no records yet (metrics.jsonl is empty)")
        if output.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise TrainctlError(f"--output {str(output)!r}: the file must end in .png, .svg or .pdf")
        w, h = default_size(len(panels(records)))
        fig = plot_records(records, title=summarize(run).name, size=(width or w, height or h))
        try:
            save_figure(fig, output)
        except OSError as exc:
            raise TrainctlError(f"cannot write {str(output)!r}: {exc.strerror or exc}") from None
        out.print(f"wrote {output}", markup=False, highlight=False)
