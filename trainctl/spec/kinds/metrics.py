"""Metric kinds: each metric's YAML options and what it needs from the model and the data,
without torch (the computation is in ``trainctl.nn.metrics``; see :mod:`.layers` for how
the two halves meet).

A spec lists metrics by name or with options::

    metrics: [accuracy, {type: top_k_accuracy, k: 3}, {type: f1, average: macro, name: f1_macro}]

Each metric writes its value under its ``name`` (default: the type) in the epoch records,
``val_<name>`` for the validation split; ``average: per_class`` writes one value per class,
``<name>_class_<i>`` (flat keys, so metrics.csv, TensorBoard and ``checkpoint.monitor`` take
them like any other value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, field_validator

from trainctl.errors import SpecError, SpecErrors, UnknownNameError
from trainctl.registry import Registry
from trainctl.spec.config import Config
from trainctl.spec.doc import SpecDoc

metric_kinds: Registry[type["MetricKind"]] = Registry("metric")

Shape = tuple[int, ...]
RESERVED = ("loss", "epoch", "step", "learning_rate", "seconds", "input_wait")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*$")


class MetricConfig(Config):
    """``name``: the key of the metric's values in the records (default: its type)."""

    name: Optional[str] = Field(None, min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _key(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _KEY.match(value):
            raise ValueError(f"a metric name starts with a letter and holds letters, digits, "
                             f"'_', '.', '-' only, got {value!r}")
        if value is not None and (value in RESERVED or value.startswith("val_")):
            raise ValueError(f"{value!r} is a key the records use already; choose another name")
        return value


class TopKConfig(MetricConfig):
    """``k``: a label counts as right when fewer than ``k`` classes score higher."""

    k: int = Field(5, gt=0)


Average = Literal["binary", "macro", "micro", "weighted", "per_class"]


class AveragedConfig(MetricConfig):
    """``average``: ``binary`` (the positive class 1 of a two-class problem), ``macro``
    (unweighted mean over the classes present), ``micro`` (from the summed counts),
    ``weighted`` (by support) or ``per_class`` (one value per class); default ``binary``
    for a one-unit output, else ``macro``."""

    average: Optional[Average] = None


@dataclass(frozen=True)
class Target:
    """What the model's output is compared with: ``output`` (shape without the batch axis),
    ``classes`` (None for regression targets), ``labels`` (one label's shape, None when
    unknown), ``loss`` (the loss's registered name) and ``source`` (for messages)."""

    output: Shape
    classes: Optional[int]
    labels: Optional[Shape]
    loss: str
    source: str


def _fmt(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class MetricKind:
    """Base of metric kinds. ``direction``: ``max`` when larger is better, else ``min``.

    :meth:`problem` says why the metric cannot measure the model against the data (None
    when it can); :meth:`keys` lists the record keys it writes.
    """

    Config: ClassVar[type[MetricConfig]] = MetricConfig
    registered_name: ClassVar[str]
    direction: ClassVar[str] = "max"

    @classmethod
    def key(cls, config: MetricConfig) -> str:
        return config.name or cls.registered_name

    @classmethod
    def keys(cls, config: MetricConfig, output: Shape) -> list[str]:
        return [cls.key(config)]

    @classmethod
    def problem(cls, config: MetricConfig, t: Target) -> Optional[str]:
        return None


# ---- the rules, shared by the kinds below ----------------------------------------------

def _needs_classes(name: str, t: Target) -> Optional[str]:
    if t.classes is None:
        return (f"{name} needs class labels, but source {t.source!r} gives regression targets "
                f"(use mean_absolute_error, mean_squared_error, root_mean_squared_error or r2)")
    return None


def _binary_rule(name: str, t: Target) -> Optional[str]:
    """0/1 labels against an output of [1] (or multi-label: labels shaped like the output)."""
    if (p := _needs_classes(name, t)) is not None:
        return p
    if t.labels is not None and t.labels == t.output and t.labels != ():
        return None  # multi-label: one 0/1 label per output unit
    if t.classes != 2:
        return (f"{name} needs 2 classes, source {t.source!r} has {t.classes} (use accuracy or "
                f"sparse_categorical_accuracy)")
    if tuple(t.output) != (1,):
        return (f"{name} thresholds one unit per label; the model outputs {_fmt(t.output)} "
                f"(for a [2] output use sparse_categorical_accuracy)")
    return None


def _argmax_rule(name: str, t: Target) -> Optional[str]:
    """Integer (or one-hot) labels against an output of [..., classes]."""
    if (p := _needs_classes(name, t)) is not None:
        return p
    if tuple(t.output) == (1,):
        return (f"{name} takes the arg-max over an output of [classes]; the model outputs [1] "
                f"(one unit: use binary_accuracy or accuracy)")
    if t.output[-1] != t.classes:
        return (f"{name} takes the arg-max over {t.classes} classes (source {t.source!r}); the "
                f"model outputs {_fmt(t.output)}")
    if t.labels is not None and t.labels not in (t.output[:-1], t.output):
        return (f"{name}: labels of shape {_fmt(t.labels)} do not fit an output of "
                f"{_fmt(t.output)}")
    return None


def _classifier_rule(name: str, t: Target) -> Optional[str]:
    """A one-unit binary output or a [classes] output."""
    if (p := _needs_classes(name, t)) is not None:
        return p
    return _binary_rule(name, t) if tuple(t.output) == (1,) else _argmax_rule(name, t)


def _values_rule(name: str, t: Target) -> Optional[str]:
    """Labels of the output's shape (a label per sample for an output of [1])."""
    fits = t.labels is None or t.labels == t.output or (t.labels == () and t.output == (1,))
    if t.classes is not None and (t.labels is None or t.labels == ()) and t.output != (1,):
        return (f"{name} compares the output with the labels, but source {t.source!r} gives one "
                f"class label per sample ({t.classes} classes) and the model outputs "
                f"{_fmt(t.output)} (use accuracy, or a regression source)")
    if not fits:
        return (f"{name} compares the output {_fmt(t.output)} with labels of shape "
                f"{_fmt(t.labels)}: they must have the same shape")
    return None


def output_for_labels(t: Target) -> Optional[Shape]:
    """The output a loss that compares values (``labels: values``) needs, when the labels
    cannot take the model's output: [1] for one label per sample; None when they fit."""
    if t.labels is None or t.labels == t.output or (t.labels == () and t.output == (1,)):
        return None
    return t.labels if t.labels else (1,)


def _average(config: AveragedConfig, t: Target) -> str:
    return config.average or ("binary" if tuple(t.output) == (1,) else "macro")


# ---- the kinds -------------------------------------------------------------------------

@metric_kinds.register("accuracy")
class Accuracy(MetricKind):
    """Resolved as Keras does: binary for ``binary_crossentropy`` or an output of [1],
    categorical for ``categorical_crossentropy``, sparse otherwise."""

    @classmethod
    def resolve(cls, loss: str, output: Shape) -> str:
        if loss == "binary_crossentropy" or tuple(output) == (1,):
            return "binary_accuracy"
        return "categorical_accuracy" if loss == "categorical_crossentropy" else \
            "sparse_categorical_accuracy"

    @classmethod
    def problem(cls, config, t):
        if (p := _needs_classes("accuracy", t)) is not None:
            return p
        kind = metric_kinds.get(cls.resolve(t.loss, t.output))
        found = kind.problem(config, t)
        return found and found.replace(kind.registered_name, f"accuracy (here {kind.registered_name})", 1)


@metric_kinds.register("binary_accuracy")
class BinaryAccuracy(MetricKind):
    """Share of labels on the prediction's side of 0.5 (of 0 for logits)."""

    @classmethod
    def problem(cls, config, t):
        return _binary_rule(cls.registered_name, t)


@metric_kinds.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(MetricKind):
    """Share of integer labels equal to the arg-max of the output."""

    @classmethod
    def problem(cls, config, t):
        return _argmax_rule(cls.registered_name, t)


@metric_kinds.register("categorical_accuracy")
class CategoricalAccuracy(MetricKind):
    """Arg-max of the output against the arg-max of a one-hot label (or an integer label)."""

    @classmethod
    def problem(cls, config, t):
        return _argmax_rule(cls.registered_name, t)


@metric_kinds.register("top_k_accuracy")
class TopKAccuracy(MetricKind):
    """Share of labels among the ``k`` highest scores (ties count as in ``tf.math.in_top_k``:
    right when fewer than ``k`` classes score strictly higher than the label's class)."""

    Config = TopKConfig

    @classmethod
    def problem(cls, config, t):
        if (p := _argmax_rule(cls.registered_name, t)) is not None:
            return p
        if config.k >= t.output[-1]:
            return (f"top_k_accuracy with k {config.k} of {t.output[-1]} classes counts every "
                    f"label as right; set k below {t.output[-1]}")
        return None


class _Averaged(MetricKind):
    Config = AveragedConfig

    @classmethod
    def keys(cls, config, output):
        if config.average != "per_class":
            return [cls.key(config)]
        classes = 2 if tuple(output) == (1,) else output[-1]
        return [f"{cls.key(config)}_class_{c}" for c in range(classes)]

    @classmethod
    def problem(cls, config, t):
        if (p := _classifier_rule(cls.registered_name, t)) is not None:
            return p
        if _average(config, t) == "binary" and t.classes != 2:
            return (f"{cls.registered_name} with average binary needs 2 classes, source "
                    f"{t.source!r} has {t.classes} (use macro, micro, weighted or per_class)")
        return None


@metric_kinds.register("precision")
class Precision(_Averaged):
    """tp / (tp + fp) per class; 0 for a class never predicted (scikit-learn's
    ``zero_division=0``)."""


@metric_kinds.register("recall")
class Recall(_Averaged):
    """tp / (tp + fn) per class; 0 for a class absent from the labels."""


@metric_kinds.register("f1")
class F1(_Averaged):
    """2·tp / (2·tp + fp + fn) per class (micro: from the summed counts)."""


@metric_kinds.register("auc")
class AUC(MetricKind):
    """Area under the ROC curve, exact (scikit-learn's ``roc_auc_score``); one-vs-rest
    macro average over the classes for a [classes] output."""

    @classmethod
    def problem(cls, config, t):
        return _classifier_rule(cls.registered_name, t)


@metric_kinds.register("perplexity")
class Perplexity(MetricKind):
    """exp of the mean cross-entropy per label (per token for outputs [T, classes])."""

    direction = "min"

    @classmethod
    def problem(cls, config, t):
        return _classifier_rule(cls.registered_name, t)


class _Regression(MetricKind):
    direction = "min"

    @classmethod
    def problem(cls, config, t):
        return _values_rule(cls.registered_name, t)


@metric_kinds.register("mean_absolute_error")
class MeanAbsoluteError(_Regression):
    """mean |y − ŷ| over every output value."""


@metric_kinds.register("mean_squared_error")
class MeanSquaredError(_Regression):
    """mean (y − ŷ)² over every output value."""


@metric_kinds.register("root_mean_squared_error")
class RootMeanSquaredError(_Regression):
    """sqrt of mean_squared_error."""


@metric_kinds.register("r2")
class R2(_Regression):
    """Coefficient of determination per output, averaged uniformly (scikit-learn's
    ``r2_score``)."""

    direction = "max"


# ---- a spec's metrics ------------------------------------------------------------------

@dataclass(frozen=True)
class MetricPlan:
    """One entry of ``metrics``, validated: its index, kind, Config and record key."""

    index: int
    kind: type[MetricKind]
    config: MetricConfig

    @property
    def name(self) -> str:
        return self.kind.key(self.config)

    @property
    def path(self) -> tuple:
        return ("metrics", self.index)


def plan_metrics(doc: SpecDoc) -> list[MetricPlan]:
    """The validated entries of ``metrics`` (names or ``{type: NAME, ...}``).

    Raises SpecErrors with every problem: unknown names (with "did you mean"), bad
    options, and two entries writing the same key (located at the second).
    """
    errors: list[SpecError] = []
    plans: list[MetricPlan] = []
    taken: dict[str, int] = {}
    entries = doc.get(("metrics",))
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        path = ("metrics", i)
        name = entry if isinstance(entry, str) else \
            entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue  # the schema reports it
        try:
            kind = metric_kinds.get(name)
            config = doc.validate(kind.Config, path, exclude=("type",))
        except UnknownNameError as exc:
            errors.append(doc.error(path + (("type",) if isinstance(entry, dict) else ()), str(exc)))
            continue
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        plan = MetricPlan(i, kind, config)
        if plan.name in taken:
            errors.append(doc.error(path, f"metric name {plan.name!r} is already used by "
                                          f"metrics[{taken[plan.name]}]; give this one another "
                                          f"'name'"))
            continue
        taken[plan.name] = i
        plans.append(plan)
    if errors:
        raise doc.sorted(errors)
    return plans


def metric_problems(doc: SpecDoc, target: Target) -> list[SpecError]:
    """Each metric of ``doc`` that cannot measure ``target``, located at ``metrics[i]``
    (entries with other problems are left to :func:`plan_metrics`' caller)."""
    try:
        plans = plan_metrics(doc)
    except SpecErrors:
        return []
    out = []
    for plan in plans:
        message = plan.kind.problem(plan.config, target)
        if message is not None:
            out.append(doc.error(plan.path, message))
    return out


def directions(metrics: Any) -> dict[str, str]:
    """``{record key: "min" | "max"}`` for the ``metrics`` list of a resolved spec (names
    or mappings), with ``loss`` and the ``val_`` keys; per-class keys take their metric's
    direction. Entries that do not name a metric are skipped."""
    out = {"loss": "min", "val_loss": "min"}
    for entry in metrics if isinstance(metrics, list) else []:
        name = entry if isinstance(entry, str) else entry.get("type") if isinstance(entry, dict) else None
        if name not in metric_kinds:
            continue
        kind = metric_kinds.get(name)
        key = entry.get("name") or name if isinstance(entry, dict) else name
        for k in (key, f"val_{key}"):
            out[k] = kind.direction
            out[f"{k}_class_"] = kind.direction  # prefix of the per-class keys
    return out


def direction_of(key: str, table: dict[str, str]) -> Optional[str]:
    """The direction of record ``key`` in a :func:`directions` table (None if unknown)."""
    if key in table:
        return table[key]
    base = re.sub(r"_class_\d+$", "_class_", key)
    return table.get(base)
