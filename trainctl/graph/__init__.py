"""The model graph: spec entries → layers → a built Model with inferred shapes."""

from trainctl.graph.build import build_layers, build_model, spec_doc
from trainctl.graph.model import LayerShapeError, Model

__all__ = ["Model", "LayerShapeError", "build_model", "build_layers", "spec_doc"]
