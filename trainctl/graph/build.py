"""Spec → Model: validate each layer entry, name layers uniquely, infer shapes.

Validation, naming and the shape rules are torch-free (trainctl.spec.kinds.check, which
``trainctl validate`` uses too); here the layers are made and built on a device. Every
problem is a SpecError located at the layer's entry in the spec file; all layer errors are
reported together.
"""

from __future__ import annotations

import torch

from trainctl.errors import SpecErrors
from trainctl.graph.dag_model import GraphModel, NodeShapeError
from trainctl.graph.model import LayerShapeError, Model
from trainctl.nn.layers import Layer, layers
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.kinds.check import plan_layers
from trainctl.spec.kinds.dag import GraphPlan, plan_graph


def spec_doc(spec: Spec) -> SpecDoc:
    """The spec's document, or one without positions for a Spec built in code."""
    return spec.doc if spec.doc is not None else SpecDoc("<spec>", spec.to_dict())


def build_layers(spec: Spec) -> list[Layer]:
    """Layer objects (not yet built) for ``spec.model.layers``, from the torch-free plan
    of :func:`trainctl.spec.kinds.check.plan_layers` (validated options, unique names);
    raises SpecErrors."""
    return [layers.get(plan.kind.registered_name)(plan.config, name=plan.name)
            for plan in plan_layers(spec_doc(spec))]


def build_model(spec: Spec, device: torch.device | str = "cpu") -> Model:
    """Build the spec's model on ``device`` with shapes inferred: a chain :class:`Model`
    for ``model.layers``, a :class:`GraphModel` for ``model.nodes``.

    Raises SpecErrors for bad layer entries and for a layer that cannot take its input
    shape (located at that layer's entry; for a DAG, naming the input nodes too).
    """
    if spec.model.nodes is not None:
        return build_graph_model(spec, device)
    model = Model(build_layers(spec), tuple(spec.model.input_shape), name=spec.name)
    try:
        model.build(device)
    except LayerShapeError as exc:
        raise SpecErrors([spec_doc(spec).error(("model", "layers", exc.index), exc.message)]) from None
    return model


def build_graph_model(spec: Spec, device: torch.device | str = "cpu",
                      plan: GraphPlan | None = None) -> GraphModel:
    """A :class:`GraphModel` for ``spec.model.nodes`` from its torch-free plan (all graph
    and shape checks done there), built on ``device``; raises SpecErrors."""
    plan = plan if plan is not None else plan_graph(spec_doc(spec))
    try:
        return graph_model_from_plan(plan, spec.name, device)
    except NodeShapeError as exc:
        raise SpecErrors([spec_doc(spec).error(exc.path, exc.message)]) from None


def graph_model_from_plan(plan: GraphPlan, name: str = "model",
                          device: torch.device | str = "cpu") -> GraphModel:
    """A :class:`GraphModel` of a validated ``plan``, built on ``device``; raises
    NodeShapeError (located at the node's path in the plan's document)."""
    node_layers: dict[str, Layer] = {}
    for node in plan.nodes:  # topological: a shared layer exists before its second user
        node_layers[node.name] = (node_layers[node.shared_with] if node.shared_with else
                                  layers.get(node.type)(node.config, name=node.name))
    return GraphModel(plan, node_layers, name=name).build(device)
