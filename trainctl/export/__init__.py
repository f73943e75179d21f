"""Exporting a built model for use outside trainctl: ONNX (:func:`to_onnx`, one exporter
per layer type in :data:`onnx_exporters`) and a portable safetensors + JSON form."""

from trainctl.export.onnx_graph import OPSET, ExportError, to_onnx
from trainctl.export.onnx_layers import onnx_activations, onnx_exporters
from trainctl.export import onnx_seq  # noqa: F401  (registers the sequence layers)
from trainctl.export.walk import ModelGraph, model_graph

__all__ = ["OPSET", "ExportError", "to_onnx", "onnx_exporters", "onnx_activations",
           "ModelGraph", "model_graph"]
