"""``trainctl data inspect SPEC`` and ``trainctl data bench SPEC``: look at and time the
input pipeline a spec's ``data`` section builds (only that section is loaded)."""

from __future__ import annotations

import json
import os
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from trainctl.cli.common import SetOption, out, user_errors

data_app = typer.Typer(no_args_is_help=True, help="Inspect and benchmark a spec's input pipeline.")


class Split(str, Enum):
    train = "train"
    validation = "validation"
    test = "test"


def _splits(spec: Path, seed: int | None, sets: list[str]):
    from trainctl.data import plan_data
    from trainctl.spec import flag_overrides, load_spec

    s = load_spec(spec, [*sets, *flag_overrides(seed=seed)])
    return plan_data(s.data, s.doc).load(s.seed, s.train.eval_batch_size)


def _write_png(path: Path, grid: Any) -> None:
    """Write ``grid`` (uint8) as a PNG at ``path``, atomically (no partial file on error)."""
    from PIL import Image

    from trainctl.errors import TrainctlError

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        Image.fromarray(grid).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TrainctlError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


@data_app.command("inspect")
def inspect_command(
    spec: Path = typer.Argument(..., help="The YAML spec whose data to inspect."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Write the first training images as a PNG grid."),
    examples: int = typer.Option(3, "--examples", min=0, help="Training samples to show."),
    images: int = typer.Option(64, "--images", min=1, help="Images in the -o grid."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the spec's seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Element spec, samples and batches per split, class balance and a few examples."""
    with user_errors():
        splits = _splits(spec, seed, sets)
        from trainctl.data.report import first_samples, image_grid, inspect_splits

        info = inspect_splits(splits, examples)
        if output is not None:
            import numpy as np

            samples = first_samples(splits.train, images)
            _write_png(output, image_grid(np.stack([x for x, _ in samples])))
            info["grid"] = {"path": str(output), "images": len(samples)}
        if as_json:
            typer.echo(json.dumps(info))
            return
        _print_inspection(spec, info)


def _print_inspection(spec: Path, info: dict[str, Any]) -> None:
    p = lambda text: out.print(text, markup=False)  # noqa: E731
    p(f"{spec}: source {info['source']}, input shape {info['input_shape']}, "
      f"{info['num_classes'] or 'no'} classes")
    p(f"{'split':<11}{'samples':>8}{'batches':>9}  element spec")
    for name, s in info["splits"].items():
        batches = s["batches"] if s["batches"] >= 0 else "?"
        p(f"{name:<11}{s['samples']:>8}{batches:>9}  {s['element_spec'] or '-'}")
    names = info["class_names"] or [str(c) for c in range(info["num_classes"] or 0)]
    if info["num_classes"]:
        p("class balance  " + "  ".join(names))
        for name, s in info["splits"].items():
            if s["samples"]:
                counts = s["classes"]
                total = max(1, sum(counts))
                p(f"  {name:<11}  " + "  ".join(f"{c} ({100 * c / total:.0f}%)" for c in counts))
    for k, ex in enumerate(info["examples"]):
        more = ", ..." if ex["more"] else ""
        label = ex["label"]
        named = f" ({names[label]})" if isinstance(label, int) and 0 <= label < len(names) else ""
        values = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in ex["first_values"])
        p(f"example {k}: {ex['dtype']} {ex['shape']} [{values}{more}]  label {label}{named}")
    if "grid" in info:
        p(f"wrote {info['grid']['images']} images to {info['grid']['path']}")


@data_app.command("bench")
def bench_command(
    spec: Path = typer.Argument(..., help="The YAML spec whose input pipeline to time."),
    split: Split = typer.Option(Split.train, "--split", help="Which split's pipeline."),
    seconds: float = typer.Option(2.0, "--seconds", min=0.01,
                                  help="At most this long per stage (one epoch if shorter)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the spec's seed."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Elements per second of every stage of a split's pipeline, each timed from the
    source up to it (so a stage's cost is the drop from the line above)."""
    with user_errors():
        splits = _splits(spec, seed, sets)
        from trainctl.data.report import bench_stages

        rates = bench_stages(getattr(splits, split.value), seconds)
        if as_json:
            typer.echo(json.dumps({"spec": str(spec), "split": split.value, "stages": [
                {"stage": r.stage, "elements": r.elements, "samples": r.samples,
                 "seconds": r.seconds, "elements_per_second": r.elements_per_second,
                 "samples_per_second": r.samples_per_second, "serial_reason": r.serial_reason}
                for r in rates]}))
            return
        width = max(len(r.stage) for r in rates)
        out.print(f"{'stage':<{width}}  {'elements':>9}  {'elements/s':>12}  {'samples/s':>12}",
                  markup=False)
        for r in rates:
            out.print(f"{r.stage:<{width}}  {r.elements:>9}  {r.elements_per_second:>12,.0f}  "
                      f"{r.samples_per_second:>12,.0f}", markup=False)
        for r in rates:
            if r.serial_reason:
                out.print(f"note: {r.stage} ran serially: {r.serial_reason}", markup=False)
