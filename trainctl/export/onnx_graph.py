"""Our model graph → an ONNX ``ModelProto``, written with the ``onnx`` package
(``onnx.helper``, ``onnx.numpy_helper``), never through torch.onnx.

The graph is read from the built model (:func:`trainctl.export.walk.model_graph`); every
node is handed to the exporter registered for its layer's ``type:`` name in
:data:`trainctl.export.onnx_layers.onnx_exporters`, which appends ONNX nodes to an
:class:`OnnxGraph`. What the file holds:

* opset :data:`OPSET` (ai.onnx 17, IR version 8: onnxruntime ≥ 1.11 runs it);
* one graph input per model input, named as the spec names it (a ``layers:`` chain has
  one, ``input``), of sample shape [batch, *shape] with a dynamic first axis ``batch`` and
  the input's dtype; a DAG input with ``columns`` is fed its own slice (the model's
  named inputs, not the data's joined feature array);
* one graph output per model output, named as the output node (a chain: its last
  layer), [batch, *output_shape]: exactly what the model's forward pass returns at
  inference (``training=False``): logits when the last layer has no activation,
  probabilities when it ends in softmax or sigmoid. ``metadata_props`` record which
  (``trainctl.output``), with the spec's loss when known;
* every weight as an initializer named as in checkpoints (``<layer>/<weight>``), once
  even when a node shares another's layer; derived constants are named
  ``<node>/<what>``.

Preprocessing done by the data pipeline (``standardize``, ...) is not part of the model
and not in the file: feed the graph what the model sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainctl.autodiff.tensor import Tensor
from trainctl.errors import TrainctlError

OPSET = 17
IR_VERSION = 8
#: protobuf's limit on one message: a larger model would need ONNX's external data files
MAX_BYTES = 2**31 - 1
_DTYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32, "int64": np.int64}


class ExportError(TrainctlError):
    """The model cannot be exported (a layer or activation ONNX cannot express, a bad
    output path, a file that cannot be written)."""


def to_numpy(value: Tensor | torch.Tensor) -> np.ndarray:
    """A weight or constant as a C-contiguous numpy array on the CPU."""
    data = value.data if isinstance(value, Tensor) else value
    return np.ascontiguousarray(data.detach().to("cpu").numpy())


class OnnxGraph:
    """ONNX nodes and initializers being collected for one model.

    ``float_type`` is the numpy float type of the model's weights (constants an exporter
    adds use it). Value names are unique: :meth:`fresh` suffixes ``:1``, ``:2`` on reuse.
    """

    def __init__(self, float_type: type = np.float32):
        self.float_type = float_type
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()
        self._weights: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        """A value name not used yet, ``base`` if free."""
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}:{k}"
        self._names.add(name)
        return name

    def reserve(self, name: str) -> None:
        """Mark a graph input name as taken."""
        self._names.add(name)

    def const(self, base: str, value) -> str:
        """An initializer holding ``value`` (numpy array, torch tensor or Tensor; floats as
        ``float_type``); its name."""
        array = value if isinstance(value, np.ndarray) else to_numpy(value)
        if array.dtype.kind == "f" and array.dtype != self.float_type:
            array = array.astype(self.float_type)
        from onnx import numpy_helper

        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, base: str, value: float) -> str:
        """A float constant of the model's float type, shape []."""
        return self.const(base, np.array(value, dtype=self.float_type))

    def ints(self, base: str, values) -> str:
        """An int64 constant vector (shapes, axes)."""
        return self.const(base, np.asarray(list(values), dtype=np.int64))

    def weight(self, var: Tensor, value=None) -> str:
        """The initializer of a weight named as the variable (``<layer>/<weight>``), made
        once per variable; ``value`` (an array) stores a reshaped view instead."""
        key = var.name + ("" if value is None else f"/{tuple(value.shape)}")
        if key not in self._weights:
            base = var.name if value is None else f"{var.name}/reshaped"
            self._weights[key] = self.const(base, var if value is None else value)
        return self._weights[key]

    def op(self, op_type: str, inputs: list[str], base: str, **attrs) -> str:
        """Append one ONNX node with one output; returns the output's name
        (``base/<op_type>``, made unique). ``inputs`` may hold "" for an omitted input."""
        from onnx import helper

        out = self.fresh(f"{base}/{op_type}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def to_onnx(model, metadata: dict[str, str] | None = None, preprocessing=None):
    """The ``onnx.ModelProto`` of a built ``model`` (chain or DAG), checked with
    ``onnx.checker.check_model``; see the module docstring for its contents.

    ``preprocessing`` (a :class:`trainctl.data.preprocess.Preprocessing`, or None): put
    it in front of the model (:mod:`trainctl.export.onnx_preprocess`), so the graph takes
    raw features [batch, *data shape] (float32): under the model input's name, or, for a
    DAG whose inputs take ``columns`` of the data's feature array, as one input
    ``features`` that the graph slices.

    Raises ExportError naming the node and its type when a layer (or its activation) has
    no ONNX exporter, or the preprocessing step that has none.
    """
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'trainctl[export]'") \
            from None

    from trainctl.export.onnx_layers import export_node
    from trainctl.export.walk import model_graph

    graph = model_graph(model)
    wide = (any(v.dtype == torch.float64 for v in model.variables)
            or any(i.dtype == "float64" for i in graph.inputs))
    g = OnnxGraph(np.float64 if wide else np.float32)  # float64 anywhere promotes, as in ops
    values: dict[str, str] = {}  # model value name -> ONNX value name
    for name in graph.outputs:
        g.reserve(name)  # the Identity below gives the output this name
    inputs = (_raw_inputs(g, graph, preprocessing, values) if preprocessing is not None
              else [_model_input(g, i, values) for i in graph.inputs])
    for node in graph.nodes:
        args = [values[s] for s in node.inputs]
        values[node.name] = export_node(g, node, args)
    outputs = []
    out_elem = helper.np_dtype_to_tensor_dtype(np.dtype(g.float_type))
    for name in graph.outputs:
        # the output under the output node's own name
        g.nodes.append(helper.make_node("Identity", [values[name]], [name], name=f"{name}/output"))
        outputs.append(helper.make_tensor_value_info(name, out_elem,
                                                     ["batch", *graph.shape_of(name)]))
    onnx_graph = helper.make_graph(g.nodes, graph.name or "model", inputs, outputs,
                                   initializer=g.initializers)
    proto = helper.make_model(onnx_graph, producer_name="trainctl",
                              opset_imports=[helper.make_opsetid("", OPSET)],
                              ir_version=IR_VERSION)
    from trainctl import __version__

    proto.producer_version = __version__
    helper.set_model_props(proto, dict(metadata or {}))
    if proto.ByteSize() > MAX_BYTES:
        raise ExportError(f"the model takes {proto.ByteSize() / 2**30:.1f} GiB as ONNX, over "
                          f"protobuf's 2 GiB limit (external data files are not supported); "
                          f"use --format safetensors")
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _model_input(g: OnnxGraph, i, values: dict[str, str]):
    """The graph input of model input ``i``: its name, [batch, *shape], its dtype (a
    float input narrower than the graph's float type is cast up first)."""
    from onnx import helper

    g.reserve(i.name)
    dtype = np.dtype(_DTYPES[i.dtype])
    values[i.name] = i.name
    if dtype.kind == "f" and dtype != g.float_type:  # float32 beside float64: promoted
        values[i.name] = g.op("Cast", [i.name], i.name,
                              to=helper.np_dtype_to_tensor_dtype(np.dtype(g.float_type)))
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    return helper.make_tensor_value_info(i.name, elem, ["batch", *i.shape])


def _raw_inputs(g: OnnxGraph, graph, preprocessing, values: dict[str, str]) -> list:
    """The graph input of raw features and the preprocessed model inputs from it (in
    ``values``); ExportError for several inputs without ``columns``."""
    from onnx import TensorProto, helper

    from trainctl.export.onnx_preprocess import export_preprocessing

    columns = [i.columns for i in graph.inputs]
    if all(c is not None for c in columns):
        name, shape = "features", (*graph.inputs[0].shape[:-1], max(c[1] for c in columns))
    elif len(graph.inputs) == 1:
        name, shape = graph.inputs[0].name, graph.inputs[0].shape
    else:
        raise ExportError("--with-preprocessing needs one model input, or inputs that take "
                          "columns of one feature array")
    g.reserve(name)
    x = export_preprocessing(g, preprocessing, name)
    for i in graph.inputs:
        if i.columns is None:
            values[i.name] = x
        else:
            values[i.name] = g.op("Slice", [x, g.ints(f"{i.name}/start", [i.columns[0]]),
                                            g.ints(f"{i.name}/end", [i.columns[1]]),
                                            g.ints(f"{i.name}/axis", [-1])], i.name)
    return [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shape])]
