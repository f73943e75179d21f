"""``trainctl export SPEC --checkpoint C -o model.onnx``: a trained model for use outside
trainctl, as ONNX or as safetensors weights plus a JSON graph description."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from trainctl.cli.common import out, user_errors
from trainctl.cli.validate import SET_HELP


class Format(str, Enum):
    onnx = "onnx"
    safetensors = "safetensors"


def export_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint directory or a run "
                                    "directory (its final checkpoint)."),
    output: Path = typer.Option(..., "-o", "--output", help="The file to write: model.onnx, or "
                                "model.safetensors (with model.json beside it)."),
    fmt: Format = typer.Option(Format.onnx, "--format", help="onnx: the inference graph (opset "
                               "17, dynamic batch axis); safetensors: the weights alone plus a "
                               "JSON description of the graph."),
    sets: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Export a trained model: ONNX (named inputs and outputs, batch axis dynamic) or
    safetensors weights with a JSON graph description."""
    with user_errors():
        from trainctl.spec import load_spec

        s = load_spec(spec, sets)
        from trainctl.export import to_onnx  # torch and onnx only once the spec is valid
        from trainctl.export.files import write_files_atomic
        from trainctl.export.portable import export_portable
        from trainctl.export.walk import export_metadata

        model = _trained_model(s, checkpoint, spec)
        meta = export_metadata(s)
        if fmt is Format.onnx:
            write_files_atomic({output: to_onnx(model, meta).SerializeToString()})
            wrote = str(output)
        else:
            wrote = f"{output} and {export_portable(model, output, meta)}"
    out.print(f"wrote {wrote}", markup=False)


def _trained_model(s, checkpoint: Path, spec_file: Path):
    """The spec's model (CPU) with the checkpoint's weights (their moving averages with
    ``use_ema``); CheckpointError when the checkpoint's spec has another model."""
    from trainctl.cli.eval import _check_same_model_and_data
    from trainctl.graph import build_model
    from trainctl.io import load_checkpoint
    from trainctl.optim import averaged_weights

    weights, opt_tensors, state = load_checkpoint(checkpoint)
    model = build_model(s, "cpu")
    trained = state.get("spec")
    if isinstance(trained, dict):  # the model section as train.prepare resolves it
        section = dict(s.to_dict()["model"])
        if s.model.nodes is None:
            section["layers"] = [layer.get_config() for layer in model.layers]
        else:
            section = model.resolved()
        _check_same_model_and_data(trained, {**trained, "model": section}, spec_file)
    if isinstance(s.optimizer, dict) and s.optimizer.get("use_ema"):
        weights = averaged_weights(weights, opt_tensors)
    model.load_state_dict(weights)
    return model
