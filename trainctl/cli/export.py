"""``trainctl export SPEC --checkpoint C -o model.onnx``: a trained model for use outside
trainctl, as ONNX or as safetensors weights plus a JSON graph description."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import CHECKPOINT_OPTION, LatestOption, SetOption, out, user_errors


class Format(str, Enum):
    onnx = "onnx"
    safetensors = "safetensors"


def export_command(
    spec: Path = typer.Argument(..., help="The spec the model was trained from."),
    checkpoint: Path = CHECKPOINT_OPTION,
    latest: LatestOption = False,
    output: Path = typer.Option(..., "-o", "--output", help="The file to write: model.onnx, or "
                                "model.safetensors (with model.json beside it)."),
    fmt: Optional[Format] = typer.Option(None, "--format", help="onnx: the inference graph "
                                         "(opset 17, dynamic batch axis); safetensors: the "
                                         "weights alone plus a JSON description of the graph. "
                                         "Default: from the -o extension (.onnx, .safetensors)."),
    with_preprocessing: bool = typer.Option(False, "--with-preprocessing", help="ONNX: put the "
                                            "checkpoint's feature preprocessing (standardize, "
                                            "normalize, cast) in the graph, which then takes "
                                            "raw features."),
    sets: SetOption = [],
) -> None:
    """Export a trained model: ONNX (named inputs and outputs, batch axis dynamic) or
    safetensors weights with a JSON graph description."""
    with user_errors():
        fmt = _format(output, fmt)
        from trainctl.spec import load_spec

        load_spec(spec, sets)  # spec errors before torch is imported
        from trainctl.export import ExportError, to_onnx
        from trainctl.export.files import write_files_atomic
        from trainctl.export.portable import export_portable
        from trainctl.export.walk import export_metadata
        from trainctl.train.trained import load_trained

        if with_preprocessing and fmt is not Format.onnx:
            raise ExportError("--with-preprocessing applies to --format onnx only (the JSON "
                              "description records the preprocessing in its metadata)")
        trained = load_trained(spec, checkpoint, sets, "cpu", latest=latest)
        meta = export_metadata(trained, with_preprocessing)
        if fmt is Format.onnx:
            proto = to_onnx(trained.model, meta,
                            trained.preprocessing if with_preprocessing else None)
            write_files_atomic({output: proto.SerializeToString()})
            wrote = str(output)
        else:
            wrote = f"{output} and {export_portable(trained.model, output, meta)}"
    out.print(f"wrote {wrote}", markup=False)


SUFFIXES = {".onnx": Format.onnx, ".safetensors": Format.safetensors}


def _format(output: Path, fmt: Format | None) -> Format:
    """The format ``-o output`` is written in: ``fmt`` when given, else by the extension.
    Raises OutputError for another extension or one that contradicts ``fmt``."""
    from trainctl.errors import OutputError

    by_suffix = SUFFIXES.get(output.suffix.lower())
    if by_suffix is None:
        raise OutputError(f"-o {output}: unknown extension {output.suffix!r}; use "
                          f"{' or '.join(SUFFIXES)}")
    if fmt is not None and fmt is not by_suffix:
        raise OutputError(f"-o {output} with --format {fmt.value}: the extension says "
                          f"{by_suffix.value}; name the file .{fmt.value} or drop --format")
    return by_suffix
