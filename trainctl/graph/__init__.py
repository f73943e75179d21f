"""The model graph: spec entries → layers → a built Model with inferred shapes."""

from trainctl.graph.build import build_graph_model, build_layers, build_model, spec_doc
from trainctl.graph.dag_model import GraphModel
from trainctl.graph.model import LayerShapeError, Model

__all__ = ["Model", "GraphModel", "build_graph_model", "LayerShapeError", "build_model", "build_layers", "spec_doc"]
