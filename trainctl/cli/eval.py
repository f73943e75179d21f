"""``trainctl eval SPEC --checkpoint PATH``: loss, metrics and (classifiers) per-class
precision/recall/F1 and the confusion matrix of a trained model on a split or on a data
file given with ``--data``."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from trainctl.cli.common import (
    CHECKPOINT_OPTION, DeviceOption, LatestOption, PrecisionOption,
    SetOption, out, say_auto_device, user_errors)

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


class Split(str, Enum):
    test = "test"
    validation = "validation"
    train = "train"


def evaluate_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = CHECKPOINT_OPTION,
    split: Optional[Split] = typer.Option(None, "--split", help="Which split to evaluate "
                                          "(default test; not with --data)."),
    data: Path = typer.Option(None, "--data", help="Evaluate on this file instead of a split: "
                              ".csv, .npz, .jsonl or a folder of images in class sub-folders "
                              "(read with the spec's source options when of the same kind)."),
    latest: LatestOption = False,
    plot: Path = typer.Option(None, "--plot", help="Write the confusion matrix as a picture "
                              "(.png, .svg or .pdf)."),
    execution: Optional[str] = typer.Option(None, "--execution", help="eager or graph "
                                            "(default: the spec's execution)."),
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Evaluate a checkpoint on a split of the spec's data (same seeded split as training)
    or on a data file: spec metrics, per-class precision/recall/F1, confusion matrix."""
    from trainctl.errors import CheckpointError, OutputError

    with user_errors():
        if split is not None and data is not None:
            raise OutputError(f"--split {split.value} and --data {data}: give one, not both "
                              f"(--data evaluates on that file instead of a split)")
        split = split or Split.test
        if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
            raise OutputError(f"--plot {plot}: the file must end in {', '.join(PLOT_SUFFIXES)}")
        from trainctl.train import evaluate
        from trainctl.train.report import class_report, labelled_predictions
        from trainctl.train.trained import load_trained

        sets = [*sets, *([f"execution={execution}"] if execution else [])]
        if precision is not None:  # as --set precision=... (the spec's key)
            sets = [*sets, f"precision={precision}"]
        trained = load_trained(spec, checkpoint, sets, device, latest=latest, with_data=True)
        say_auto_device(device if device is not None else trained.spec.device, trained.device)
        setup = trained.setup
        if data is not None:
            ds, where = _data_file(trained, data), {"data": str(data)}
            samples = sum(len(b[1]) for b in ds)
        else:
            ds = {"test": setup.splits.test, "validation": setup.splits.validation,
                  "train": setup.splits.train}[split.value]
            samples, where = setup.splits.sizes.get(split.value, 0), {"split": split.value}
            if samples == 0:
                raise CheckpointError(f"the {split.value} split of {str(spec)!r} is empty")
        result = evaluate(setup, ds)
        report = None
        if trained.task != "values":
            names = _class_names(trained)
            report = class_report(*labelled_predictions(trained, ds), names)
            if plot is not None:
                from trainctl.io.confusion import save_confusion

                save_confusion(plot, report["confusion_matrix"], names,
                               f"{setup.spec.name}: {where.get('split') or data.name}")
        elif plot is not None:
            raise OutputError("--plot draws a confusion matrix; this model is a regression")
        payload = {"spec": str(spec), "checkpoint": str(trained.checkpoint), **where,
                   "samples": samples, **result, **({"report": report} if report else {})}
        if as_json:
            typer.echo(json.dumps(_finite(payload)))
        else:
            _print(payload, result, report)


def _data_file(trained, path: Path):
    from trainctl.data import Dataset
    from trainctl.data.inputs import read_labelled

    data = read_labelled(path, trained.training_source, trained.task, trained.class_names)
    x = trained.preprocessing(data.x)
    return Dataset.from_tensor_slices((x, data.y)).batch(trained.spec.train.eval_batch_size)


def _class_names(trained) -> list[str]:
    k = 2 if trained.task == "binary" else int(trained.model.output_shape[-1])
    names = list(trained.class_names or [])
    return names if len(names) == k else [str(i) for i in range(k)]


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None (NaN is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _print(payload: dict, result: dict, report: dict | None) -> None:
    from rich.table import Table
    from rich.text import Text  # class names are text, never markup

    what = payload.get("split") or payload.get("data")
    out.print(f"{what} ({payload['samples']} samples): " +
              "  ".join(f"{k} {v:.4f}" for k, v in result.items()), markup=False)
    if report is None:
        return
    table = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    rows = [*report["per_class"], {"class": "macro avg", **report["macro_avg"]},
            {"class": "weighted avg", **report["weighted_avg"]}]
    for i, r in enumerate(rows):
        table.add_row(Text(str(r["class"])), f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                      f"{r['f1']:.4f}", str(r["support"]), end_section=i == len(rows) - 3)
    out.print(table)
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("true \\ predicted")
    for name in report["classes"]:
        matrix.add_column(Text(str(name)), justify="right")
    for name, counts in zip(report["classes"], report["confusion_matrix"]):
        matrix.add_row(Text(str(name)), *(str(c) for c in counts))
    out.print(matrix)
