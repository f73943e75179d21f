"""``trainctl validate SPEC...``: check specs without training, and without torch.

Each spec is checked whole: the schema, every registered name and its options (layers,
loss, optimizer, metrics, data sources and steps), the shapes through the model, and the
model's ends against the data (which is read, torch-free) and the loss. ``OK  PATH`` for a
good spec, every error of a bad one; exit code 2 if any spec has an error.
"""

from __future__ import annotations

from pathlib import Path
import typer

from trainctl.cli.common import SetOption, print_line


def validate_command(
    specs: list[Path] = typer.Argument(..., help="The YAML specs to check."),
    sets: SetOption = [],
) -> None:
    """Check specs (schema, names, options, shapes, data) without training or torch."""
    failed = False
    for path in specs:
        errors = check_spec_file(path, sets)
        for error in errors:
            print_line(f"error: {error}", error=True)  # plain lines: rich is not imported
        if not errors:
            print_line(f"OK  {path}")
        failed = failed or bool(errors)
    if failed:
        raise typer.Exit(2)


def check_spec_file(path: str | Path, overrides: list[str]) -> list[Exception]:
    """Every problem of the spec at ``path`` with ``overrides`` applied (TrainctlErrors,
    spec errors in file order first); an empty list for a good spec."""
    from trainctl.errors import SpecError, SpecErrors, TrainctlError
    from trainctl.spec import Spec, load_doc
    from trainctl.spec.kinds.check import check_references, fit_problems

    try:
        doc = load_doc(path, overrides)
    except SpecError as exc:
        return [exc]
    except SpecErrors as exc:
        return list(exc.errors)
    try:
        spec = Spec.from_doc(doc)  # on errors, it checks the layers, loss, ... too
    except SpecErrors as exc:
        from trainctl.data.spec_check import data_problems  # and the data section here

        return doc.sorted([*exc.errors, *data_problems(doc)]).errors
    report = check_references(doc)
    errors: list[SpecError] = list(report.errors)
    others: list[TrainctlError] = []
    facts = _data_facts(spec, doc, errors, others)
    if facts is not None and report.output_shape is not None and report.loss is not None:
        errors.extend(fit_problems(doc, report.input_shape, report.output_shape,
                                   report.loss[0], facts, report.graph.output_path))
    return [*doc.sorted(errors).errors, *others]


def _data_facts(spec, doc, errors: list, others: list):
    """Plan the data section and describe it (torch-free, cheap: see DataPlan.describe)
    for its sample shape and classes."""
    from trainctl.data.pipeline import plan_data  # numpy: only for a valid top level
    from trainctl.errors import SpecError, SpecErrors, TrainctlError

    try:
        return plan_data(spec.data, doc).describe(spec.seed)
    except SpecErrors as exc:
        errors.extend(exc.errors)
    except SpecError as exc:  # a step that cannot fit the data, located in the spec
        errors.append(exc)
    except TrainctlError as exc:  # the data cannot be read
        others.append(exc)
    return None
