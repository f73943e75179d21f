"""``trainctl eval SPEC --checkpoint PATH``: loss and metrics of a trained model on a split."""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path

import typer

from trainctl.cli.common import SetOption, out, user_errors


class Split(str, Enum):
    test = "test"
    validation = "validation"
    train = "train"


def evaluate_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint directory or a run "
                                    "directory (its best checkpoint, else its final one)."),
    split: Split = typer.Option(Split.test, "--split", help="Which split to evaluate."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Evaluate a checkpoint on a split of the spec's data (same seeded split as training)."""
    from trainctl.errors import CheckpointError

    with user_errors():
        from trainctl.train import evaluate
        from trainctl.train.trained import load_trained

        trained = load_trained(spec, checkpoint, sets, device, with_data=True)
        setup = trained.setup
        ds = {"test": setup.splits.test, "validation": setup.splits.validation,
              "train": setup.splits.train}[split.value]
        if setup.splits.sizes.get(split.value, 0) == 0:
            raise CheckpointError(f"the {split.value} split of {str(spec)!r} is empty")
        result = evaluate(setup, ds)
        if as_json:
            payload = {"spec": str(spec), "checkpoint": str(checkpoint), "split": split.value,
                       "samples": setup.splits.sizes[split.value], **result}
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                     for k, v in payload.items()}  # NaN is not JSON
            typer.echo(json.dumps(clean))
        else:
            out.print(f"{split.value} ({setup.splits.sizes[split.value]} samples): " +
                      "  ".join(f"{k} {v:.4f}" for k, v in result.items()), markup=False)
