"""Preprocessing inside the ONNX graph (``trainctl export --with-preprocessing``): the
fitted feature transforms a checkpoint stores (:class:`trainctl.data.preprocess.Preprocessing`)
as ONNX nodes in front of the model, so the graph takes raw features as the data source
gives them.

One exporter per transform name in :data:`onnx_preprocessors`, ``fn(g, step, x) ->
value``, mirroring the transform's ``apply`` (trainctl.data.transforms): standardize
((x - mean)/std), normalize ((x - min)/span, a span of 0 counting as 1), cast. Image and
text transforms (resize, tokenize) have none: asking for them raises ExportError naming
the step.
"""

from __future__ import annotations

import numpy as np

from trainctl.export.onnx_graph import ExportError, OnnxGraph
from trainctl.registry import Registry

onnx_preprocessors: Registry = Registry("ONNX preprocessing exporter")

_BASE = "preprocessing"


def _float(g: OnnxGraph, x: str) -> str:
    return g.op("Cast", [x], _BASE, to=1)  # TensorProto.FLOAT: the transforms compute in float32


@onnx_preprocessors.register("standardize")
def _standardize(g, step, x):
    mean = g.const(f"{_BASE}/mean", np.asarray(step.mean, np.float32))
    std = g.const(f"{_BASE}/std", np.asarray(step.std, np.float32))
    return g.op("Div", [g.op("Sub", [_float(g, x), mean], _BASE), std], _BASE)


@onnx_preprocessors.register("normalize")
def _normalize(g, step, x):
    span = np.asarray(step.high - step.low, dtype=np.float32)
    span = np.where(span == 0, np.float32(1), span)
    low = g.const(f"{_BASE}/min", np.asarray(step.low, np.float32))
    return g.op("Div", [g.op("Sub", [_float(g, x), low], _BASE),
                        g.const(f"{_BASE}/span", span)], _BASE)


@onnx_preprocessors.register("cast")
def _cast(g, step, x):
    from onnx import helper

    return g.op("Cast", [x], _BASE, to=helper.np_dtype_to_tensor_dtype(np.dtype(step.config.dtype)))


def export_preprocessing(g: OnnxGraph, preprocessing, x: str) -> str:
    """``x`` through every step of ``preprocessing``, then as the model's float type (what
    trainctl feeds the model); ExportError naming a step without an exporter."""
    for i, step in enumerate(preprocessing.steps):
        if step.name not in onnx_preprocessors:
            raise ExportError(f"cannot put the preprocessing in the ONNX graph: step {i} "
                              f"({step.name}) has no ONNX exporter (exportable: "
                              f"{', '.join(onnx_preprocessors.names())}); export without "
                              f"--with-preprocessing and apply it before the graph")
        x = onnx_preprocessors.get(step.name)(g, step, x)
    to = 11 if g.float_type == np.float64 else 1  # TensorProto.DOUBLE / FLOAT
    return g.op("Cast", [x], _BASE, to=to)
