"""``trainctl eval SPEC --checkpoint PATH``: loss and metrics of a trained model on a split."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from trainctl.cli.common import out, user_errors
from trainctl.cli.validate import SET_HELP


class Split(str, Enum):
    test = "test"
    validation = "validation"
    train = "train"


def evaluate_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint directory or a run "
                                    "directory (its final checkpoint)."),
    split: Split = typer.Option(Split.test, "--split", help="Which split to evaluate."),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Evaluate a checkpoint on a split of the spec's data (same seeded split as training)."""
    from trainctl.errors import CheckpointError
    from trainctl.spec import load_spec

    with user_errors():
        s = load_spec(spec, sets)
        from trainctl.io import load_checkpoint  # torch only once the spec is valid
        from trainctl.train import evaluate, prepare

        weights, _, state = load_checkpoint(checkpoint)
        seed = state.get("seed")
        if isinstance(seed, int) and seed != s.seed:
            s = s.with_overrides(seed=seed)  # the split the model was trained with
        setup = prepare(s, device=device)
        setup.model.load_state_dict(weights)
        ds = {"test": setup.splits.test, "validation": setup.splits.validation,
              "train": setup.splits.train}[split.value]
        if setup.splits.sizes.get(split.value, 0) == 0:
            raise CheckpointError(f"the {split.value} split of {str(spec)!r} is empty")
        result = evaluate(setup, ds)
        if as_json:
            payload = {"spec": str(spec), "checkpoint": str(checkpoint), "split": split.value,
                       "samples": setup.splits.sizes[split.value], **result}
            typer.echo(json.dumps(payload))
        else:
            out.print(f"{split.value} ({setup.splits.sizes[split.value]} samples): " +
                      "  ".join(f"{k} {v:.4f}" for k, v in result.items()), markup=False)
