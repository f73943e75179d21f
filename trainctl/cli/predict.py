"""``trainctl predict SPEC --checkpoint C --input FILE_OR_DIR --output preds.csv|.jsonl|.npz``:
a trained model's predictions on new raw data, preprocessed as in training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import (
    CHECKPOINT_OPTION, DeviceOption, LatestOption, SetOption,
    err, out, say_auto_device, user_errors)


def predict_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = CHECKPOINT_OPTION,
    input_path: Path = typer.Option(..., "--input", "-i", help="A .csv, .npy or .npz file, an "
                                    "image, or a folder of images."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the predictions: "
                                ".csv, .jsonl or .npz (written atomically)."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Rows per forward pass."),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="Classes listed per row, "
                                        "most probable first (classifiers; default 3, at most "
                                        "the number of classes: more is capped, with a warning)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave malformed rows out (listed "
                                  "on stderr) instead of stopping at the first."),
    latest: LatestOption = False,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    device: DeviceOption = None,
    sets: SetOption = [],
) -> None:
    """Predict with a trained model: class, probabilities and top-k classes for a
    classifier, values for a regression, one row per input row or image."""
    from trainctl.errors import OutputError

    with user_errors():
        from trainctl.io.predictions import FORMATS

        if output.suffix.lower() not in FORMATS:
            raise OutputError(f"--output {output}: unknown format {output.suffix!r}; use "
                              f"{', '.join(FORMATS)}")
        from trainctl.data.inputs import input_format, read_inputs
        from trainctl.io.predictions import write_predictions
        from trainctl.train.predict import predict_rows, row_check
        from trainctl.train.trained import load_trained

        trained = load_trained(spec, checkpoint, sets, device, latest=latest)
        say_auto_device(device if device is not None else trained.spec.device, trained.device)
        fmt = input_format(trained.training_source, None)
        fmt.check = row_check(trained)
        rows = read_inputs(input_path, fmt, skip_bad)
        with _progress(len(rows.x), quiet) as advance:
            preds = predict_rows(trained, rows, batch_size, top_k or 3, advance)
        write_predictions(output, preds)
        classes = preds.probabilities.shape[1] if preds.probabilities is not None else None
        if classes is not None and top_k is not None and top_k > classes:
            err.print(f"warning: --top-k {top_k} is more than the model's {classes} classes; "
                      f"listing {classes}", markup=False)
        if rows.skipped:
            err.print(f"skipped {len(rows.skipped)} bad row(s): {'; '.join(rows.skipped)}",
                      markup=False)
        if not quiet:
            n = len(rows.ids)
            out.print(f"wrote {n} prediction{'' if n == 1 else 's'} to {output}"
                      + (f" ({len(rows.skipped)} row{'' if len(rows.skipped) == 1 else 's'} skipped)" if rows.skipped else ""), markup=False)


class _progress:
    """A rich progress bar over ``total`` rows on a terminal (not with ``quiet``); its
    ``advance(n)`` callback is a no-op otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.bar = total, None
        if not quiet and out.is_terminal:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=out, transient=True)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        task = self.bar.add_task("predict", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
