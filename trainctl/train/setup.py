"""Spec → everything a run needs: data splits, model, loss, metrics, optimizer.

:func:`prepare` validates every section against its registry, loads the data, builds the
model on the device and cross-checks them (input shape against the data, output shape
against the loss and the number of classes). All problems are reported together as
SpecErrors located in the spec file, before any training starts or any file is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainctl.autodiff import ops
from trainctl.backend import manual_seed, resolve_device
from trainctl.backend.precision import supported as precision_supported
from trainctl.data import Splits, plan_data
from trainctl.data.facts import label_shape
from trainctl.errors import DeviceError, SpecError, SpecErrors, UnknownNameError
from trainctl.graph import Model, build_model, spec_doc
from trainctl.nn.losses import Loss, losses
from trainctl.nn.metrics import Metric, build_metric
from trainctl.nn.regularizers import regularization_loss
from trainctl.optim import Optimizer, optimizers
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.kinds.check import DataFacts, fit_problems
from trainctl.spec.kinds.control import plan_control
from trainctl.spec.kinds.metrics import plan_metrics
from trainctl.spec.yaml_loader import dump_yaml
from trainctl.train.control import finish_control


@dataclass
class Setup:
    """The parts of a run, built from one spec."""

    spec: Spec
    device: torch.device
    splits: Splits
    model: Model
    loss: Loss
    metrics: list[Metric]
    optimizer: Optimizer
    resolved: dict[str, Any]
    """The spec with every default filled in, sections included (what a run records)."""
    control: Any = None
    """The validated ``schedule`` and ``callbacks`` (a spec.kinds.control.ControlPlan)."""
    shard: tuple[int, int] | None = None
    """(world size, rank) of a data-parallel run (train/distributed.py), else None."""

    notices: list[str] = field(default_factory=list)
    """Warnings about the spec for the user (e.g. a run shorter than its warmup)."""

    graph: Any = None
    """The traced step functions with ``execution: graph`` (train.graph_step.graph_steps)."""

    @property
    def world_size(self) -> int:
        """Processes training together (1 unless data-parallel)."""
        return self.shard[0] if self.shard is not None else 1

    def training_loss(self, x, y):
        """The training forward pass of one batch, as both step paths (eager, and traced in
        graph mode) record it on their tape: (per-sample loss [B], mean loss plus the
        layers' kernel/bias regularization penalty (scalar), predictions)."""
        pred = self.model(x, training=True)
        per_sample = self.loss(y, pred)
        loss = ops.mean(per_sample)
        penalty = regularization_loss(self.model.layers)
        if penalty is not None:
            loss = loss + penalty
        return per_sample, loss, pred

    def resolved_yaml(self) -> str:
        """:attr:`resolved` as YAML that ``load_spec`` reads back to the same spec."""
        return dump_yaml(self.resolved)


class _Collector:
    """Gathers SpecErrors from several independent checks."""

    def __init__(self, doc: SpecDoc):
        self.doc = doc
        self.errors: list[SpecError] = []

    def registered(self, registry, path: tuple, name: Any):
        try:
            return registry.get(name)
        except UnknownNameError as exc:
            self.errors.append(self.doc.error(path, str(exc)))
            return None

    def validate(self, cls, path: tuple):
        exclude = () if "type" in cls.Config.model_fields else ("type",)
        try:
            return self.doc.validate(cls.Config, path, exclude=exclude)
        except SpecErrors as exc:
            self.errors.extend(exc.errors)
            return None

    def add(self, path: tuple, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def raise_if_any(self) -> None:
        if self.errors:
            self.errors.sort(key=lambda e: (e.line is None, e.line or 0, e.col or 0))
            raise SpecErrors(self.errors)


def prepare(spec: Spec, device: str | torch.device | None = None,
            shard: tuple[int, int] | None = None) -> Setup:
    """Build the run described by ``spec`` on ``device`` (default: the spec's ``device``);
    ``shard`` ``(world size, rank)``: this replica's part of the train split, for
    data-parallel training (trainctl.train.distributed).

    Seeds every generator with ``spec.seed`` first, so weights and data order are
    reproducible. Raises SpecErrors (all problems of the spec), DataError (bad data) or
    DeviceError (device not available).
    """
    doc = spec_doc(spec)
    check = _Collector(doc)
    try:
        dev = resolve_device(device if device is not None else spec.device)
    except DeviceError as exc:
        if device is not None:
            raise
        check.add(("device",), str(exc))
        dev = resolve_device("cpu")  # keep checking the rest of the spec
    problem = precision_supported(spec.precision, dev)
    if problem is not None:
        check.add(("precision",), problem)
    if spec.graph is not None and spec.graph.cuda_graphs and dev.type != "cuda":
        check.add(("graph", "cuda_graphs"), f"CUDA graphs need a CUDA device; this run's "
                                            f"device is {dev}")
    manual_seed(spec.seed)

    plan = None
    try:
        plan = plan_data(spec.data, doc)  # sources, steps and transforms of data.*
    except SpecErrors as exc:
        check.errors.extend(exc.errors)
    loss_cls = check.registered(losses, ("loss", "type"), spec.loss["type"])
    loss_cfg = check.validate(loss_cls, ("loss",)) if loss_cls else None
    opt_cls = check.registered(optimizers, ("optimizer", "type"), spec.optimizer["type"])
    opt_cfg = check.validate(opt_cls, ("optimizer",)) if opt_cls else None
    control = plan_control(doc)  # schedule and callbacks
    check.errors.extend(control.errors)
    metric_plans = []
    try:
        metric_plans = plan_metrics(doc)  # names, options, unique record keys
    except SpecErrors as exc:
        check.errors.extend(exc.errors)
    model = None
    try:
        model = build_model(spec, dev)
    except SpecErrors as exc:
        check.errors.extend(exc.errors)
    if opt_cfg is not None and model is not None:  # weight_decay_exclude and groups patterns
        for path, message in opt_cfg.pattern_problems([v.name for v in model.trainable_variables]):
            check.add(("optimizer", *path), message)
    check.raise_if_any()

    splits = plan.load(spec.seed, spec.train.eval_batch_size, shard)
    loss = loss_cls(loss_cfg)
    _check_fit(check, spec, splits, model, loss)
    check.raise_if_any()

    from_logits = bool(getattr(loss.config, "from_logits", False))
    metric_objs = [build_metric(plan, loss.registered_name, from_logits, model.output_shape)
                   for plan in metric_plans]
    optimizer = opt_cls(model.trainable_variables, opt_cfg)
    resolved = spec.to_dict()
    resolved["data"] = plan.resolved()
    resolved["model"] = resolved_model(spec, model)
    resolved["loss"] = loss.get_config()
    resolved["metrics"] = [e if isinstance(e, str) else  # a mapping: with its defaults
                           {"type": p.kind.registered_name, **p.config.model_dump()}
                           for e, p in zip(spec.metrics, metric_plans)]
    resolved["optimizer"] = {"type": opt_cls.registered_name, **opt_cfg.model_dump()}
    setup = Setup(spec, dev, splits, model, loss, metric_objs, optimizer, resolved, shard=shard)
    finish_control(setup, control, check)  # run-length defaults, monitors, resolved sections
    check.raise_if_any()
    return setup


def resolved_model(spec: Spec, model: Model) -> dict[str, Any]:
    """The spec's model section with every default filled in (what a run records)."""
    if spec.model.nodes is None:
        return {**spec.to_dict()["model"], "layers": [layer.get_config() for layer in model.layers]}
    return model.resolved()  # a graph: inputs, nodes (defaults filled in) and outputs


def _check_fit(check: _Collector, spec: Spec, splits: Splits, model: Model, loss: Loss) -> None:
    """Input shape against the data; output shape against the loss and the classes (the
    torch-free rule that ``trainctl validate`` applies too)."""
    facts = DataFacts(splits.input_shape, splits.num_classes, splits.source_name,
                      label_shape(splits.train))
    out = getattr(model, "plan", None)
    check.errors.extend(fit_problems(check.doc, tuple(model.input_shape),
                                     tuple(model.output_shape), type(loss), facts,
                                     out.output_path if out is not None else None))
