"""Checks of a spec that need the kinds but not torch: registry references and their
options, layer names, shapes through the model, and the model against the loss and data.

:func:`plan_layers` is what ``trainctl.graph`` builds a model from and what ``trainctl
validate`` infers shapes with; :func:`check_references` adds the loss, optimizer and
metrics; :func:`fit_problems` checks the model's ends against the data and the loss (used
by ``trainctl.train.prepare`` and ``trainctl validate`` alike). They read the document, not
a validated Spec, so they also run on a spec whose top level has errors: every problem is
reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainctl.errors import ShapeError, SpecError, SpecErrors, UnknownNameError
from trainctl.registry import Registry
from trainctl.spec.doc import SpecDoc
from trainctl.spec.kinds.layers import LayerConfig, LayerKind, Shape, fmt_shape, layer_kinds
from trainctl.spec.kinds.losses import LossKind, loss_kinds
from trainctl.spec.kinds.metrics import Target, metric_problems, output_for_labels, plan_metrics
from trainctl.spec.kinds.optimizers import optimizer_kinds
from trainctl.spec.kinds.control import plan_control

LAYERS = ("model", "layers")


@dataclass
class LayerPlan:
    """One entry of ``model.layers``, validated: its kind, Config, unique name, its index
    and (once shapes are inferred) its input and output shapes."""

    index: int
    kind: type[LayerKind]
    config: LayerConfig
    name: str
    input_shape: Shape | None = None
    output_shape: Shape | None = None

    @property
    def path(self) -> tuple:
        return LAYERS + (self.index,)


@dataclass
class Report:
    """What :func:`check_references` found: ``errors`` and, where their part was valid,
    the layer plans (with shapes when the whole chain could be inferred), the loss kind
    and its Config, the optimizer kind and its Config."""

    errors: list[SpecError] = field(default_factory=list)
    graph: Any = None  # a trainctl.spec.kinds.dag.GraphPlan, with shapes
    loss: tuple[type[LossKind], Any] | None = None
    optimizer: tuple[type, Any] | None = None

    @property
    def output_shape(self) -> Shape | None:
        return self.graph.output_shape if self.graph is not None else None

    @property
    def input_shape(self) -> Shape | None:
        """The sample shape the model needs from the data."""
        return self.graph.data_shape if self.graph is not None else None


def plan_layers(doc: SpecDoc) -> list[LayerPlan]:
    """Validate ``model.layers`` of ``doc`` and infer shapes from ``model.input_shape``.

    Layer names are the given ``name`` or Keras-style automatic ones (``dense``,
    ``dense_1``, ...), unique in the model. Raises SpecErrors with every problem: unknown
    types, bad options, repeated names, and the first layer that cannot take its input
    shape (located at its entry).
    """
    errors: list[SpecError] = []
    plans = _layer_entries(doc, errors)
    if errors:
        raise doc.sorted(errors)
    shape = _input_shape(doc)
    if plans is None or shape is None:
        return plans or []
    source = ("model.input_shape", doc.locate(("model", "input_shape"))[0])
    for plan in plans:
        plan.input_shape = shape
        try:
            shape = tuple(plan.kind.compute_output_shape(shape, plan.config))
        except ShapeError as exc:
            given = f"{source[0]}{f', line {source[1]}' if source[1] else ''}"
            raise SpecErrors([doc.error(plan.path, f"layer {plan.name!r} "
                                        f"({plan.kind.registered_name}) cannot take input shape "
                                        f"{fmt_shape(shape)} (from {given}): {exc}")]) from None
        source = (f"layer {plan.name!r}", doc.locate(plan.path)[0])
        plan.output_shape = shape
    return plans


def check_references(doc: SpecDoc) -> Report:
    """Check the layers (with shapes), loss, optimizer, metrics, schedule and callbacks
    ``doc`` names against the kinds. Parts the top-level schema rejects are skipped (it
    reports them)."""
    from trainctl.spec.kinds.dag import plan_graph

    report = Report()
    try:
        report.graph = plan_graph(doc)
    except SpecErrors as exc:
        report.errors.extend(exc.errors)
    report.loss = _named(doc, ("loss",), loss_kinds, report.errors)
    report.optimizer = _named(doc, ("optimizer",), optimizer_kinds, report.errors)
    report.errors.extend(plan_control(doc).errors)  # schedule and callbacks
    try:
        plan_metrics(doc)  # names, options, unique record keys
    except SpecErrors as exc:
        report.errors.extend(exc.errors)
    return report


@dataclass(frozen=True)
class DataFacts:
    """What the model must fit: one sample's ``input_shape``, ``num_classes`` (None for
    regression targets), the ``source`` name used in messages and one label's shape
    (``label_shape``, None when unknown)."""

    input_shape: Shape
    num_classes: int | None
    source: str
    label_shape: Shape | None = None


def fit_problems(doc: SpecDoc, input_shape: Shape, output_shape: Shape,
                 loss: type[LossKind], data: DataFacts,
                 output_path: tuple | None = None) -> list[SpecError]:
    """The model's ends against the data and the loss (:func:`_model_problems`); when they
    fit, the labels and every metric against the output (:func:`target_problems`)."""
    found = _model_problems(doc, input_shape, output_shape, loss, data, output_path)
    # an output the loss rejects would make every metric complain about it too
    return found or target_problems(doc, output_shape, loss, data,
                                    output_path or _last_layer(doc))


def target_problems(doc: SpecDoc, output_shape: Shape, loss: type[LossKind],
                    data: DataFacts, last: tuple) -> list[SpecError]:
    """Labels that a loss comparing values cannot take (one label per sample needs an
    output of [1]), located at ``last`` (the output layer); each metric that cannot
    measure this output against these labels (a regression metric on class labels,
    binary_accuracy on 3 classes, an arg-max over one unit, accuracy on regression
    targets), located at ``metrics[i]``."""
    target = Target(tuple(output_shape), data.num_classes, data.label_shape,
                    loss.registered_name, data.source)
    need = output_for_labels(target) if loss.labels == "values" else None
    out = [] if need is None else [doc.error(last, (
        f"{loss.registered_name} compares the output with the labels: source {data.source!r} "
        f"gives labels of shape {fmt_shape(data.label_shape)} per sample, so the model must "
        f"output {fmt_shape(need)}, not {fmt_shape(output_shape)}"))]
    return out + metric_problems(doc, target)


def _last_layer(doc: SpecDoc) -> tuple:
    layers = doc.get(LAYERS)
    return LAYERS + (len(layers) - 1,) if isinstance(layers, list) and layers else ("model",)


def _model_problems(doc: SpecDoc, input_shape: Shape, output_shape: Shape,
                    loss: type[LossKind], data: DataFacts,
                    output_path: tuple | None = None) -> list[SpecError]:
    """The model's ``input_shape`` against the data; its ``output_shape`` against what
    ``loss`` needs for the data's classes; a classification loss against regression data.
    Each problem is located in ``doc`` (at ``model.input_shape`` or ``model.inputs``, the
    last layer or ``output_path`` (the output node), or ``loss.type``)."""
    if tuple(input_shape) != tuple(data.input_shape):
        where = ("model", "input_shape") if doc.get(("model", "nodes")) is None else ("model", "inputs")
        return [doc.error(where,
                          f"input_shape {fmt_shape(input_shape)} does not match the data: source "
                          f"{data.source!r} gives samples of shape {fmt_shape(data.input_shape)}")]
    name, classes = loss.registered_name, data.num_classes
    need = loss.expected_output(classes, tuple(data.label_shape or ()))
    layers = doc.get(LAYERS)
    last = LAYERS + (len(layers) - 1,) if isinstance(layers, list) and layers else ("model",)
    last = output_path or last
    if need is not None and tuple(output_shape) != tuple(need):
        return [doc.error(last, f"the model outputs shape {fmt_shape(output_shape)} but {name} "
                                f"on {classes} classes (source {data.source!r}) needs "
                                f"{fmt_shape(need)}")]
    if need is None and loss.labels != "values":
        if classes is None:
            return [doc.error(("loss", "type"), f"{name} needs class labels, but source "
                                                f"{data.source!r} gives regression targets")]
        if loss.labels == "binary":
            return [doc.error(("loss", "type"), f"{name} needs 2 classes, source "
                                                f"{data.source!r} has {classes}")]
    return []


# ---- helpers -----------------------------------------------------------------------------

def _layer_entries(doc: SpecDoc, errors: list[SpecError]) -> list[LayerPlan] | None:
    """Validated plans of the well-formed entries; None if any entry is malformed."""
    plans: list[LayerPlan] = []
    taken: dict[str, int] = {}
    complete = isinstance(doc.get(LAYERS), list)
    for i, entry in enumerate(_list(doc.get(LAYERS))):
        path = LAYERS + (i,)
        found = _kind(doc, path, entry, layer_kinds, errors)
        if found is None:
            complete = False
            continue
        kind, config = found
        name = config.name or _auto_name(kind.registered_name, taken)
        if name in taken:
            errors.append(doc.error(path + ("name",), f"layer name {name!r} is already used by "
                                                      f"model.layers[{taken[name]}]"))
            complete = False
            continue
        taken[name] = i
        plans.append(LayerPlan(i, kind, config, name))
    return plans if complete else None


def _named(doc: SpecDoc, path: tuple, registry: Registry, errors: list[SpecError]):
    entry = doc.get(path)
    return _kind(doc, path, {"type": entry} if isinstance(entry, str) else entry, registry,
                 errors)


def _kind(doc: SpecDoc, path: tuple, entry: Any, registry: Registry, errors: list[SpecError]):
    """``(kind, config)`` for a ``{type: NAME, ...}`` entry, or None (errors appended; a
    malformed entry is left to the schema)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return None
    kind = _lookup(doc, registry, path + ("type",), entry["type"], errors)
    if kind is None:
        return None
    exclude = () if "type" in kind.Config.model_fields else ("type",)
    try:
        return kind, doc.validate(kind.Config, path, exclude=exclude)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        return None


def _lookup(doc: SpecDoc, registry: Registry, path: tuple, name: str, errors: list[SpecError]):
    try:
        return registry.get(name)
    except UnknownNameError as exc:
        errors.append(doc.error(path, str(exc)))
        return None


def _input_shape(doc: SpecDoc) -> Shape | None:
    shape = doc.get(("model", "input_shape"))
    ok = isinstance(shape, list) and shape and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
    return tuple(shape) if ok else None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _auto_name(base: str, taken: dict[str, int]) -> str:
    """Keras-style unique names: dense, dense_1, dense_2, ..."""
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"
