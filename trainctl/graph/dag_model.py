"""A model whose layers form a DAG (the spec's ``model.nodes``), built from the torch-free
:class:`~trainctl.spec.kinds.dag.GraphPlan`.

Each node is a call of a layer on its inputs' outputs; a node with ``shared_with`` calls the
layer of the node it names, so both use one set of weights (one gradient, the sum of both
uses, by the chain rule). Inputs come as a dict ``{input name: Tensor}``, a tuple/list in
``model.inputs`` order, or one Tensor: the single input, or, when inputs give ``columns``,
the data's feature array that each input slices on its last axis.
"""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import fmt_shape
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError
from trainctl.graph.model import Model
from trainctl.nn.layers import Layer
from trainctl.spec.kinds.dag import GraphPlan


class NodeShapeError(ShapeError):
    """A node could not take its inputs; ``path`` is its entry in the spec."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


class GraphModel(Model):
    """Layers wired as ``plan`` says. ``layers`` holds each distinct layer once (a shared
    layer once), in topological order, so ``variables`` and checkpoints are as for a
    chain; ``node_layers`` maps every node name to the layer it calls.
    ``input_shape`` is the sample shape the data gives (``GraphPlan.data_shape``)."""

    def __init__(self, plan: GraphPlan, node_layers: dict[str, Layer], name: str = "model"):
        own = [node_layers[n.name] for n in plan.nodes if n.shared_with is None]
        super().__init__(own, plan.data_shape, name=name)
        self.plan = plan
        self.node_layers = dict(node_layers)

    def build(self, device: torch.device | str = "cpu") -> "GraphModel":
        """Create the weights on ``device`` and infer every node's shapes; raises
        NodeShapeError located at the node."""
        shapes = {i.name: i.shape for i in self.plan.inputs}
        for node in self.plan.nodes:
            layer = self.node_layers[node.name]
            ins = [shapes[s] for s in node.inputs]
            arg = ins if node.multi_input else ins[0]
            try:
                if node.shared_with is None:
                    layer.input_shape = arg
                    out = tuple(layer.build(arg, device=device))
                    layer.output_shape = out
                else:
                    out = tuple(layer.compute_output_shape(arg, layer.config))
            except ShapeError as exc:
                raise NodeShapeError(node.path, f"node {node.name!r} ({node.type}) cannot take "
                                                f"{' + '.join(map(fmt_shape, ins))}: {exc}") from None
            shapes[node.name] = out
        self.shapes = shapes
        self.output_shape = shapes[self.plan.outputs[0]]
        return self

    def feed(self, x) -> dict[str, Tensor]:
        """The input Tensors by name from ``x`` (see the module docstring); raises
        ShapeError for a missing input or a wrong shape."""
        inputs = self.plan.inputs
        if isinstance(x, dict):
            missing = [i.name for i in inputs if i.name not in x]
            if missing:
                raise ShapeError(f"model {self.name!r}: missing input(s) {', '.join(missing)}")
            values = {i.name: x[i.name] for i in inputs}
        elif isinstance(x, (tuple, list)):
            if len(x) != len(inputs):
                raise ShapeError(f"model {self.name!r} has {len(inputs)} inputs, got {len(x)}")
            values = {i.name: v for i, v in zip(inputs, x)}
        elif inputs[0].columns is not None:
            if tuple(x.shape[1:]) != self.input_shape:
                raise ShapeError(f"model {self.name!r}: expected features [batch,"
                                 f"{','.join(map(str, self.input_shape))}], got {fmt_shape(x.shape)}")
            values = {i.name: Tensor(x.data[..., i.columns[0]:i.columns[1]])
                      for i in inputs}  # data, not a function of any variable: no tape
        elif len(inputs) == 1:
            values = {inputs[0].name: x}
        else:
            raise ShapeError(f"model {self.name!r} has {len(inputs)} inputs: give a dict or a "
                             f"tuple, or columns in model.inputs")
        for i in inputs:
            if tuple(values[i.name].shape[1:]) != i.shape:
                raise ShapeError(f"model {self.name!r}: input {i.name!r} expects [batch,"
                                 f"{','.join(map(str, i.shape))}], got {fmt_shape(values[i.name].shape)}")
        return values

    def __call__(self, x, training: bool = False) -> Tensor:
        """Forward pass: the output node's value, [batch, *output_shape]."""
        values = self.feed(x)
        for _ in self._run(values, training):
            pass
        return values[self.plan.outputs[0]]

    def trace(self, x, training: bool = False):
        """Yield ``(layer, output)`` for each node in topological order (a shared layer
        once per node that calls it)."""
        yield from self._run(self.feed(x), training)

    def _run(self, values: dict, training: bool):
        for node in self.plan.nodes:
            args = [values[s] for s in node.inputs]
            layer = self.node_layers[node.name]
            values[node.name] = layer(args if node.multi_input else args[0], training=training)
            yield layer, values[node.name]

    def resolved(self) -> dict:
        """The model section with every default filled in (what a run records):
        ``inputs`` (dtype, columns), ``nodes`` in topological order (each ``name``,
        ``type``, ``inputs`` as a list, and its layer's options, or ``shared_with``) and
        ``outputs``."""
        inputs = [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype,
                   **({"columns": list(i.columns)} if i.columns else {})}
                  for i in self.plan.inputs]
        nodes = []
        for n in self.plan.nodes:
            if n.shared_with:
                nodes.append({"name": n.name, "type": n.type, "inputs": list(n.inputs),
                              "shared_with": n.shared_with})
            else:
                nodes.append({**self.node_layers[n.name].get_config(), "inputs": list(n.inputs)})
        return {"inputs": inputs, "nodes": nodes, "outputs": list(self.plan.outputs)}

    def summary(self) -> list[dict]:
        """One row per node: name, type, output shape, parameters (0 for a node sharing
        another's weights), inputs and shared_with."""
        return [{"name": n.name, "type": n.type, "output_shape": [None, *self.shapes[n.name]],
                 "params": 0 if n.shared_with else sum(w.size for w in self.node_layers[n.name].weights),
                 "inputs": list(n.inputs), "shared_with": n.shared_with}
                for n in self.plan.nodes]
