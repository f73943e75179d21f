"""The model as a DAG, torch-free: ``model.inputs`` / ``model.nodes`` / ``model.outputs``
(or the v0 ``model.layers`` chain, read as the same graph) → a :class:`GraphPlan` in
topological order with every node's input and output shapes.

``trainctl validate`` infers shapes with it and ``trainctl.graph`` builds its Model from it,
so both report the same errors, each located at the node's entry in the spec: duplicate
names, unknown inputs (with "did you mean"), cycles, nodes no output uses, a bad
``shared_with``, and a node that cannot take its inputs (naming the input nodes, their spec
lines and shapes). A multi-input kind (``multi_input()``) gets a list of shapes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from pydantic import Field, PositiveInt

from trainctl.errors import ShapeError, SpecError, SpecErrors, UnknownNameError
from trainctl.spec.config import Config
from trainctl.spec.doc import SpecDoc
from trainctl.spec.kinds.layers import LayerConfig, LayerKind, Shape, fmt_shape, layer_kinds

NODES, LAYERS, INPUTS = ("model", "nodes"), ("model", "layers"), ("model", "inputs")
GRAPH_KEYS = ("type", "inputs", "shared_with")  # node keys that are not layer options
DTYPES = ("float32", "float64", "int32", "int64")


class InputConfig(Config):
    """One of ``model.inputs``: ``name``, sample ``shape`` (no batch axis), ``dtype`` and,
    when the data gives one feature array for several inputs, ``columns: [start, stop]``,
    the slice of the data's last axis this input takes."""

    name: str = Field(min_length=1)
    shape: list[PositiveInt] = Field(min_length=1)
    dtype: Literal["float32", "float64", "int32", "int64"] = "float32"
    columns: Optional[list[int]] = Field(None, min_length=2, max_length=2)


@dataclass
class InputPlan:
    name: str
    shape: Shape
    dtype: str
    columns: tuple[int, int] | None
    path: tuple


@dataclass
class NodePlan:
    """A validated node: its kind and Config, ``inputs`` (names), ``shared_with`` (the node
    whose layer, so weights, it reuses), entry ``path``, and shapes once inferred
    (``input_shapes`` one per input)."""

    name: str
    kind: type[LayerKind]
    config: LayerConfig
    inputs: list[str]
    path: tuple
    shared_with: str | None = None
    input_shapes: list[Shape] = field(default_factory=list)
    output_shape: Shape | None = None

    @property
    def multi_input(self) -> bool:
        return _multi(self.kind)

    @property
    def type(self) -> str:
        return self.kind.registered_name


@dataclass
class GraphPlan:
    """``inputs``, ``nodes`` (topological order, sources first) and ``outputs`` (names).
    ``chain`` is True for a spec written with ``model.layers``."""

    inputs: list[InputPlan]
    nodes: list[NodePlan]
    outputs: list[str]
    chain: bool

    def node(self, name: str) -> NodePlan:
        return next(n for n in self.nodes if n.name == name)

    def shape_of(self, name: str) -> Shape | None:
        for i in self.inputs:
            if i.name == name:
                return i.shape
        return self.node(name).output_shape

    @property
    def data_shape(self) -> Shape:
        """The sample shape the data must give: the single input's shape, or, when inputs
        take ``columns``, the first one's leading axes plus the largest stop."""
        cols = [i for i in self.inputs if i.columns is not None]
        if not cols:
            return self.inputs[0].shape
        return tuple(cols[0].shape[:-1]) + (max(i.columns[1] for i in cols),)

    @property
    def output_shape(self) -> Shape | None:
        return self.shape_of(self.outputs[0])

    @property
    def output_path(self) -> tuple:
        return self.node(self.outputs[0]).path if self.nodes else ("model",)


def plan_graph(doc: SpecDoc) -> GraphPlan:
    """Validate the model section of ``doc`` and infer every shape (see the module
    docstring). Raises SpecErrors holding every problem found."""
    errors: list[SpecError] = []
    chain = not isinstance(doc.get(NODES), list)
    plan = _chain(doc, errors) if chain else _dag(doc, errors)
    if errors or plan is None:
        raise doc.sorted(errors)
    if not chain:
        _infer(doc, plan)
    return plan


# ---- reading the two forms ---------------------------------------------------------------

def _chain(doc: SpecDoc, errors: list) -> GraphPlan | None:
    from trainctl.spec.kinds.check import plan_layers  # check imports this module

    try:
        layers = plan_layers(doc)  # with the chain's shapes and messages
    except SpecErrors as exc:
        errors.extend(exc.errors)
        return None
    shape = doc.get(("model", "input_shape"))
    if not layers or layers[0].input_shape is None:
        return None  # the schema reports it
    inputs = [InputPlan("input", tuple(shape), "float32", None, ("model", "input_shape"))]
    nodes, prev = [], "input"
    for p in layers:
        if p.name == "input":
            errors.append(doc.error(p.path + ("name",), "layer name 'input' is the model's input"))
            return None
        nodes.append(NodePlan(p.name, p.kind, p.config, [prev], p.path,
                              input_shapes=[p.input_shape], output_shape=p.output_shape))
        prev = p.name
    return GraphPlan(inputs, nodes, [prev], chain=True)


def _dag(doc: SpecDoc, errors: list) -> GraphPlan | None:
    n_errors = len(errors)
    inputs: list[InputPlan] = []
    for i, entry in enumerate(_list(doc.get(INPUTS))):
        try:
            cfg = doc.validate(InputConfig, INPUTS + (i,), exclude=())
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        cols = tuple(cfg.columns) if cfg.columns else None
        if cols and not 0 <= cols[0] < cols[1]:
            errors.append(doc.error(INPUTS + (i, "columns"), f"columns [start, stop] needs "
                                    f"0 <= start < stop, got {list(cols)}"))
        elif cols and cols[1] - cols[0] != cfg.shape[-1]:
            errors.append(doc.error(INPUTS + (i, "columns"), f"columns {list(cols)} give "
                                    f"{cols[1] - cols[0]} features but shape ends in {cfg.shape[-1]}"))
        inputs.append(InputPlan(cfg.name, tuple(cfg.shape), cfg.dtype, cols, INPUTS + (i,)))
    if not isinstance(doc.get(INPUTS), list) or not doc.get(INPUTS):
        errors.append(doc.error(INPUTS if doc.get(INPUTS) is not None else ("model",),
                                "model.nodes needs model.inputs: a list of {name, shape}"))
    if len(inputs) > 1 and any(i.columns for i in inputs) != all(i.columns for i in inputs):
        errors.append(doc.error(INPUTS, "give columns for every input or for none"))
    taken: dict[str, tuple] = {}
    for i in inputs:
        if i.name in taken:
            errors.append(doc.error(i.path + ("name",), f"name {i.name!r} is already used"))
        taken[i.name] = i.path
    nodes: list[NodePlan] = []
    prev = inputs[0].name if len(inputs) == 1 else None
    for i, entry in enumerate(_list(doc.get(NODES))):
        node = _node(doc, NODES + (i,), entry, prev, errors)
        if node is None:
            prev = entry.get("name") if isinstance(entry, dict) else None
            continue
        if node.name in taken:
            errors.append(doc.error(node.path + ("name",), f"name {node.name!r} is already used "
                                    f"(line {doc.locate(taken[node.name])[0]})"))
        taken[node.name] = node.path
        nodes.append(node)
        prev = node.name
    outputs = doc.get(("model", "outputs"))
    if outputs is None:
        outputs = [nodes[-1].name] if nodes else []
    outputs = [outputs] if isinstance(outputs, str) else outputs
    if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
        errors.append(doc.error(("model", "outputs"), "expected a node name or a list of names"))
        return None
    if len(outputs) != 1:
        errors.append(doc.error(("model", "outputs"), f"one output is supported, got {len(outputs)}"))
    for k, out in enumerate(outputs):
        if out not in taken:
            errors.append(_unknown(doc, ("model", "outputs", k) if isinstance(
                doc.get(("model", "outputs")), list) else ("model", "outputs"), out, taken))
    for node in nodes:
        for k, name in enumerate(node.inputs):
            if name not in taken:
                where = node.path + (("inputs", k) if isinstance(
                    doc.get(node.path + ("inputs",)), list) else ("inputs",))
                errors.append(_unknown(doc, where, name, taken))
        if node.shared_with is not None:
            _check_shared(doc, node, nodes, errors)
    if len(errors) > n_errors:
        return None
    order = _toposort(doc, nodes, errors)
    if order is None:
        return None
    _check_used(doc, inputs, order, outputs, errors)
    return GraphPlan(inputs, order, list(outputs), chain=False) if len(errors) == n_errors else None


def _node(doc: SpecDoc, path: tuple, entry: Any, prev: str | None, errors: list) -> NodePlan | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        return None  # the schema reports it
    try:
        kind = layer_kinds.get(entry["type"])
    except UnknownNameError as exc:
        errors.append(doc.error(path + ("type",), str(exc)))
        return None
    try:
        if entry.get("shared_with") is not None:  # options come from the shared node
            config = doc.validate(LayerConfig, path, exclude=tuple(k for k in entry if k != "name"))
        else:
            config = doc.validate(kind.Config, path, exclude=GRAPH_KEYS)
    except SpecErrors as exc:
        errors.extend(exc.errors)
        return None
    if not config.name:
        errors.append(doc.error(path, "a node needs a name"))
        return None
    inputs = entry.get("inputs", prev)
    if inputs is None:
        errors.append(doc.error(path, "missing required field 'inputs' (the model has several "
                                      "inputs, so the first node must name its own)"))
        return None
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(s, str) for s in inputs):
        errors.append(doc.error(path + ("inputs",), "expected a node name or a list of names"))
        return None
    low, high = getattr(kind, "min_inputs", 1), getattr(kind, "max_inputs", 1)
    if len(inputs) < low or (high is not None and len(inputs) > high):
        want = (f"{low}" if low == high else f"at least {low}" if high is None
                else f"{low} to {high}")
        errors.append(doc.error(path + ("inputs",), f"{kind.registered_name} takes {want} "
                                f"input{'s' * (want != '1')}, got {len(inputs)}"))
        return None
    shared = entry.get("shared_with")
    if shared is not None and not isinstance(shared, str):
        errors.append(doc.error(path + ("shared_with",), "expected a node name"))
        return None
    return NodePlan(config.name, kind, config, inputs, path, shared)


def _check_shared(doc: SpecDoc, node: NodePlan, nodes: list[NodePlan], errors: list) -> None:
    where = node.path + ("shared_with",)
    target = next((n for n in nodes if n.name == node.shared_with), None)
    if target is None:
        errors.append(_unknown(doc, where, node.shared_with, {n.name: 0 for n in nodes}))
    elif target.shared_with is not None:
        errors.append(doc.error(where, f"node {target.name!r} itself shares "
                                       f"{target.shared_with!r}: name that one"))
    elif target is node or target.type != node.type:
        errors.append(doc.error(where, f"node {node.name!r} ({node.type}) cannot share the "
                                       f"weights of {target.name!r} ({target.type})"))
    else:
        extra = [k for k in doc.get(node.path) if k not in GRAPH_KEYS + ("name",)]
        if extra:
            errors.append(doc.error(node.path + (extra[0],), f"a node with shared_with takes "
                                    f"the options of {target.name!r}; remove {extra[0]!r}"))
        node.config = target.config.model_copy(update={"name": node.name})


def _toposort(doc: SpecDoc, nodes: list[NodePlan], errors: list) -> list[NodePlan] | None:
    """Kahn's algorithm; a cycle is an error at each of its nodes' entries."""
    by_name = {n.name: n for n in nodes}
    deps = {n.name: {s for s in [*n.inputs, n.shared_with] if s in by_name} for n in nodes}
    order: list[NodePlan] = []
    ready = [n.name for n in nodes if not deps[n.name]]
    done: set[str] = set()
    while ready:
        name = ready.pop(0)
        done.add(name)
        order.append(by_name[name])
        for n in nodes:
            if n.name not in done and n.name not in ready and deps[n.name] <= done:
                ready.append(n.name)
    if len(order) == len(nodes):
        return order
    stuck = [n for n in nodes if n.name not in done]
    names = " → ".join(n.name for n in stuck)
    for n in stuck:
        errors.append(doc.error(n.path + ("inputs",), f"node {n.name!r} is on a cycle "
                                                      f"(nodes {names})"))
    return None


def _check_used(doc: SpecDoc, inputs: list[InputPlan], order: list[NodePlan],
                outputs: list[str], errors: list) -> None:
    """Every input and node must lead to an output."""
    needed = set(outputs)
    for n in reversed(order):
        if n.name in needed:
            needed.update(n.inputs)
            if n.shared_with:
                needed.add(n.shared_with)
    for n in order:
        if n.name not in needed:
            errors.append(doc.error(n.path, f"node {n.name!r} is unused: no output depends on it"))
    for i in inputs:
        if i.name not in needed:
            errors.append(doc.error(i.path, f"input {i.name!r} is unused: no node reads it"))


def _unknown(doc: SpecDoc, path: tuple, name: str, taken: dict) -> SpecError:
    close = difflib.get_close_matches(name, list(taken), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(taken)}"
    return doc.error(path, f"unknown node or input {name!r}{hint}")


# ---- shapes ------------------------------------------------------------------------------

def _infer(doc: SpecDoc, plan: GraphPlan) -> None:
    """Each node's shapes in topological order; raises SpecErrors at the first node that
    cannot take its inputs (its message names the input nodes, lines and shapes)."""
    where = {i.name: i.path for i in plan.inputs} | {n.name: n.path for n in plan.nodes}
    for node in plan.nodes:
        node.input_shapes = [plan.shape_of(s) for s in node.inputs]
        arg = node.input_shapes if node.multi_input else node.input_shapes[0]
        try:
            node.output_shape = tuple(node.kind.compute_output_shape(arg, node.config))
            if node.shared_with:
                target = plan.node(node.shared_with)  # sorted before node
                if target.input_shapes != node.input_shapes:
                    raise ShapeError(f"it shares the weights of {target.name!r} (line "
                                     f"{doc.locate(target.path)[0]}), built for input "
                                     f"{' + '.join(map(fmt_shape, target.input_shapes))}")
        except ShapeError as exc:
            raise SpecErrors([doc.error(node.path, describe_mismatch(doc, node, where, exc))]) from None


def describe_mismatch(doc: SpecDoc, node: NodePlan, where: dict, exc: Exception) -> str:
    """``node 'b' (dense) cannot take its input: 'a' (line 12) gives [3,4]: <why>``."""
    parts = []
    for name, shape in zip(node.inputs, node.input_shapes):
        line = doc.locate(where[name])[0]
        parts.append(f"{name!r}{f' (line {line})' if line else ''} gives {fmt_shape(shape)}")
    return (f"node {node.name!r} ({node.type}) cannot take its input"
            f"{'s' if len(parts) > 1 else ''}: {', '.join(parts)}: {exc}")


def _multi(kind) -> bool:
    """Whether ``kind`` takes lists (its ``multi_input()``, docs/architecture.md)."""
    multi = getattr(kind, "multi_input", None)
    return bool(multi()) if callable(multi) else bool(multi)


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


__all__ = ["GraphPlan", "InputPlan", "NodePlan", "InputConfig", "plan_graph", "DTYPES",
           "describe_mismatch"]
