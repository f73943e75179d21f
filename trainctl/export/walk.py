"""A built model as one list of nodes, whether a chain :class:`~trainctl.graph.Model`
(``model.layers``) or a DAG :class:`~trainctl.graph.GraphModel` (``model.nodes``): what
the exporters walk.

A chain reads as the graph ``trainctl validate`` sees (:func:`trainctl.spec.kinds.dag.plan_graph`):
one input named ``input``, each layer a node fed by the one before, the last layer's
name as the output.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainctl.graph import GraphModel, Model
from trainctl.nn.layers import Layer


@dataclass(frozen=True)
class InputInfo:
    """A model input: ``name``, sample ``shape`` (no batch axis), ``dtype`` name and the
    ``columns`` of the data's feature array it takes (None when it is the whole array)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    columns: tuple[int, int] | None = None


@dataclass(frozen=True)
class NodeInfo:
    """One call of ``layer`` on the values named ``inputs`` (input or node names), giving
    the value ``name`` of sample shape ``output_shape``. ``shared_with`` names the node
    whose layer (and weights) this node reuses, or is None."""

    name: str
    layer: Layer
    inputs: tuple[str, ...]
    output_shape: tuple[int, ...]
    shared_with: str | None = None

    @property
    def type(self) -> str:
        return self.layer.registered_name


@dataclass(frozen=True)
class ModelGraph:
    """``inputs``, ``nodes`` in topological order, ``outputs`` (value names)."""

    name: str
    inputs: tuple[InputInfo, ...]
    nodes: tuple[NodeInfo, ...]
    outputs: tuple[str, ...]

    def shape_of(self, value: str) -> tuple[int, ...]:
        """Sample shape of an input or node value; KeyError for an unknown name."""
        for i in self.inputs:
            if i.name == value:
                return i.shape
        for n in self.nodes:
            if n.name == value:
                return n.output_shape
        raise KeyError(value)


def model_graph(model: Model) -> ModelGraph:
    """The nodes of a BUILT ``model`` (chain or DAG), see the module docstring."""
    if isinstance(model, GraphModel):
        plan = model.plan
        inputs = tuple(InputInfo(i.name, tuple(i.shape), i.dtype,
                                 tuple(i.columns) if i.columns else None) for i in plan.inputs)
        nodes = tuple(NodeInfo(n.name, model.node_layers[n.name], tuple(n.inputs),
                               tuple(model.shapes[n.name]), n.shared_with) for n in plan.nodes)
        return ModelGraph(model.name, inputs, nodes, tuple(plan.outputs))
    nodes, prev = [], "input"
    for layer in model.layers:
        nodes.append(NodeInfo(layer.name, layer, (prev,), tuple(layer.output_shape)))
        prev = layer.name
    return ModelGraph(model.name, (InputInfo("input", tuple(model.input_shape)),), tuple(nodes),
                      (prev,))


def export_metadata(trained, preprocessing_in_graph: bool = False) -> dict[str, str]:
    """What an exported file records about a :class:`~trainctl.train.trained.Trained` model
    (ONNX ``metadata_props``, the JSON's ``metadata``), as strings: ``trainctl.spec`` (its
    name), ``trainctl.task`` (``classes``, ``binary`` or ``values``), ``trainctl.output``:
    what the output holds: ``logits`` (apply softmax/sigmoid for probabilities),
    ``probabilities`` or ``values``; ``trainctl.class_names`` (JSON list, classifiers) and
    ``trainctl.preprocessing``: the fitted feature transforms raw inputs need first (JSON,
    :meth:`trainctl.data.preprocess.Preprocessing.to_json`; ``[]`` for none, and when
    ``preprocessing_in_graph``: then ``trainctl.inputs`` is ``raw``, else ``preprocessed``)."""
    import json

    from trainctl import __version__

    output = ("values" if trained.task == "values" else
              "logits" if trained.from_logits else "probabilities")
    meta = {"trainctl.spec": str(trained.spec.name), "trainctl.task": trained.task,
            "trainctl.output": output, "trainctl.version": __version__,
            "trainctl.inputs": "raw" if preprocessing_in_graph else "preprocessed",
            "trainctl.preprocessing": json.dumps([] if preprocessing_in_graph
                                                 else trained.preprocessing.to_json())}
    if trained.class_names is not None:
        meta["trainctl.class_names"] = json.dumps(list(trained.class_names))
    return meta
