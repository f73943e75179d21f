"""``trainctl validate SPEC...``: check specs without training, and without torch.

Each spec is checked whole: the schema, every registered name and its options (layers,
loss, optimizer, metrics, data sources and steps), the shapes through the model, and the
model's ends against the data (which is read, torch-free) and the loss. ``OK  PATH`` for a
good spec, every error of a bad one; exit code 2 if any spec has an error.
"""

from __future__ import annotations

from pathlib import Path
import typer

from trainctl.cli.common import err, out

SET_HELP = ("Override a spec value, e.g. --set optimizer.learning_rate=3e-4 or "
            "--set model.layers[0].units=64 (repeatable; the value is YAML).")


def validate_command(
    specs: list[Path] = typer.Argument(..., help="The YAML specs to check."),
    sets: list[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
) -> None:
    """Check specs (schema, names, options, shapes, data) without training or torch."""
    failed = False
    for path in specs:
        errors = check_spec_file(path, sets)
        for error in errors:
            err.print(f"error: {error}", markup=False)
        if not errors:
            out.print(f"OK  {path}", markup=False)
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
        return list(exc.errors)
    report = check_references(doc)
    errors: list[SpecError] = list(report.errors)
    others: list[TrainctlError] = []
    facts = _data_facts(spec, doc, errors, others)
    if facts is not None and report.output_shape is not None and report.loss is not None:
        errors.extend(fit_problems(doc, report.input_shape, report.output_shape,
                                   report.loss[0], facts, report.graph.output_path))
    return [*doc.sorted(errors).errors, *others]


def _data_facts(spec, doc, errors: list, others: list):
    """Plan and read the data section (torch-free) for its sample shape and classes."""
    from trainctl.data import plan_data  # scikit-learn and numpy: only for a valid top level
    from trainctl.errors import SpecErrors, TrainctlError
    from trainctl.spec.kinds.check import DataFacts

    try:
        plan = plan_data(spec.data, doc)
        splits = plan.load(spec.seed, spec.train.eval_batch_size)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        return None
    except TrainctlError as exc:  # the data cannot be read
        others.append(exc)
        return None
    from trainctl.data.facts import label_shape

    return DataFacts(tuple(splits.input_shape), splits.num_classes, splits.source_name,
                     label_shape(splits.train))
