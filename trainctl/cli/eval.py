"""``trainctl eval SPEC --checkpoint PATH``: loss and metrics of a trained model on a split."""

from __future__ import annotations

import json
import math
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

        weights, opt_tensors, state = load_checkpoint(checkpoint)
        seed = state.get("seed")
        if isinstance(seed, int) and seed != s.seed:
            s = s.with_overrides(seed=seed)  # the split the model was trained with
        setup = prepare(s, device=device)
        _check_same_model_and_data(state.get("spec"), setup.resolved, spec)
        if setup.optimizer.config.use_ema:  # the moving average, as validation saw it
            from trainctl.optim import averaged_weights

            weights = averaged_weights(weights, opt_tensors)
        setup.model.load_state_dict(weights)
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


# Keys that change how training ran but not what a given model computes on a given split.
_TRAINING_ONLY = ("data.batch_size", "data.shuffle", "data.drop_remainder", "device")


def _check_same_model_and_data(trained: dict | None, now: dict, spec_file: Path) -> None:
    """Refuse to evaluate under a spec whose model or data differ from the checkpoint's.

    A different model or data pipeline (standardisation, split fractions, source) would
    give numbers that look right but measure something else. Raises CheckpointError
    listing the differences. Checkpoints without a recorded spec (format 1) are not checked.
    """
    from trainctl.errors import CheckpointError
    from trainctl.train.resume import diff_specs

    if not isinstance(trained, dict):
        return
    changes = [c for c in diff_specs(trained, now)
               if c.path.startswith(("model", "data")) and not c.path.startswith(_TRAINING_ONLY)]
    if changes:
        listed = "; ".join(f"{c.path}: {c.old!r} -> {c.new!r}" for c in changes[:6])
        more = f" (and {len(changes) - 6} more)" if len(changes) > 6 else ""
        raise CheckpointError(f"{spec_file} does not describe the model and data this checkpoint "
                              f"was trained with: {listed}{more}; evaluate with the run's "
                              f"spec.yaml instead")
