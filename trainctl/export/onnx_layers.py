"""ONNX exporters, one per layer type, registered by the layer's ``type:`` name in
:data:`onnx_exporters`, and one per activation name in :data:`onnx_activations`.

An exporter ``fn(g, node, x) -> value`` appends to ``g`` (an
:class:`~trainctl.export.onnx_graph.OnnxGraph`) the ONNX nodes computing ``node.layer``'s
``call(x, training=False)`` on the value(s) ``x`` (one name; a list for a multi-input
layer) and returns the name of the result. Each mirrors the layer's inference formula
(see the layer's docstring in :mod:`trainctl.nn.layers`), with every shape but the batch
axis known. Operators: ONNX opset 17 (https://onnx.ai/onnx/operators/).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trainctl.autodiff.ops.window import window
from trainctl.export.onnx_graph import ExportError, OnnxGraph, to_numpy
from trainctl.export.walk import NodeInfo
from trainctl.registry import Registry
from trainctl.spec.kinds.layers_conv import pair

onnx_exporters: Registry = Registry("ONNX layer exporter")
onnx_activations: Registry = Registry("ONNX activation exporter")


def export_node(g: OnnxGraph, node: NodeInfo, args: list[str]) -> str:
    """The value of ``node`` from its input values ``args``; raises ExportError naming the
    node and its type when the type has no exporter."""
    if node.type not in onnx_exporters:
        raise ExportError(f"cannot export to ONNX: node {node.name!r} is a {node.type} layer, "
                          f"which has no ONNX exporter (exportable types: "
                          f"{', '.join(onnx_exporters.names())})")
    return onnx_exporters.get(node.type)(g, node, args if node.layer.multi_input() else args[0])


def activation(g: OnnxGraph, node: NodeInfo, x: str, name: str | None) -> str:
    """``name``'s activation (None or 'linear': none) applied to ``x``."""
    name = name or "linear"
    if name not in onnx_activations:
        raise ExportError(f"cannot export to ONNX: node {node.name!r} ({node.type}) uses "
                          f"activation {name!r}, which has no ONNX exporter (exportable: "
                          f"{', '.join(onnx_activations.names())})")
    return onnx_activations.get(name)(g, x, node.name)


# ---- activations (trainctl.nn.activations) ----------------------------------------------

@onnx_activations.register("linear")
def _linear(g, x, base):
    return x


def _unary(op_type: str, **attrs):
    def export(g, x, base):
        return g.op(op_type, [x], base, **attrs)
    export.__name__ = f"export_{op_type.lower()}"
    return export


for _name, _op, _attrs in (("relu", "Relu", {}), ("sigmoid", "Sigmoid", {}), ("tanh", "Tanh", {}),
                           ("softplus", "Softplus", {}), ("softsign", "Softsign", {}),
                           ("softmax", "Softmax", {"axis": -1}),
                           ("log_softmax", "LogSoftmax", {"axis": -1}),
                           ("elu", "Elu", {"alpha": 1.0}),
                           ("leaky_relu", "LeakyRelu", {"alpha": 0.2}),  # Keras 3's slope
                           ("hard_sigmoid", "HardSigmoid", {"alpha": 1 / 6, "beta": 0.5})):
    onnx_activations.register(_name)(_unary(_op, **_attrs))


@onnx_activations.register("gelu")
def _gelu(g, x, base):
    """Exact GELU: 0.5·x·(1 + erf(x/√2)) (Gelu itself needs opset 20)."""
    erf = g.op("Erf", [g.op("Mul", [x, g.scalar(f"{base}/inv_sqrt2", 1 / math.sqrt(2))], base)],
               base)
    one_plus = g.op("Add", [erf, g.scalar(f"{base}/one", 1.0)], base)
    return g.op("Mul", [g.op("Mul", [x, one_plus], base), g.scalar(f"{base}/half", 0.5)], base)


@onnx_activations.register("silu")
def _silu(g, x, base):
    return g.op("Mul", [x, g.op("Sigmoid", [x], base)], base)


@onnx_activations.register("log_sigmoid")
def _log_sigmoid(g, x, base):
    """log σ(x) = -softplus(-x)."""
    return g.op("Neg", [g.op("Softplus", [g.op("Neg", [x], base)], base)], base)


# ---- core, reshaping, merge -------------------------------------------------------------

@onnx_exporters.register("dense")
def _dense(g, node, x):
    layer = node.layer
    y = g.op("MatMul", [x, g.weight(layer.kernel)], node.name)
    if layer.bias is not None:
        y = g.op("Add", [y, g.weight(layer.bias)], node.name)
    return activation(g, node, y, layer.config.activation)


@onnx_exporters.register("activation")
def _activation(g, node, x):
    return activation(g, node, x, node.layer.config.activation)


@onnx_exporters.register("dropout")
def _dropout(g, node, x):
    """Identity at inference."""
    return x


@onnx_exporters.register("flatten")
def _flatten(g, node, x):
    return g.op("Flatten", [x], node.name, axis=1)


@onnx_exporters.register("reshape")
def _reshape(g, node, x):
    return g.op("Reshape", [x, g.ints(f"{node.name}/shape", (0, *node.output_shape))], node.name)


@onnx_exporters.register("permute")
def _permute(g, node, x):
    return g.op("Transpose", [x], node.name, perm=[0, *node.layer.config.dims])


def _fold(op_type: str):
    def export(g, node, xs):
        y = xs[0]
        for other in xs[1:]:
            y = g.op(op_type, [y, other], node.name)
        return y
    export.__name__ = f"export_{op_type.lower()}"
    return export


onnx_exporters.register("add")(_fold("Add"))
onnx_exporters.register("subtract")(_fold("Sub"))
onnx_exporters.register("multiply")(_fold("Mul"))


@onnx_exporters.register("concatenate")
def _concatenate(g, node, xs):
    return g.op("Concat", list(xs), node.name, axis=node.layer.config.axis)


# ---- convolution and pooling ------------------------------------------------------------

def _in_shape(node: NodeInfo) -> tuple[int, ...]:
    """[1, *sample shape] of the node's (single) input, as ops.window wants it."""
    return (1, *node.layer.input_shape)


def _pads(win) -> list[int]:
    """ONNX ``pads``: every axis' start, then every axis' end."""
    return [lo for lo, _ in win.pads] + [hi for _, hi in win.pads]


@onnx_exporters.register("conv1d")
@onnx_exporters.register("conv2d")
def _conv(g, node, x):
    layer, cfg = node.layer, node.layer.config
    k = tuple(layer.kernel.shape[2:])
    win = window(node.type, _in_shape(node), k, cfg.strides, cfg.padding, cfg.dilation_rate,
                 "kernel")
    args = [x, g.weight(layer.kernel)] + ([g.weight(layer.bias)] if layer.bias is not None else [])
    y = g.op("Conv", args, node.name, kernel_shape=list(k), strides=list(win.strides),
             dilations=list(win.dilation), pads=_pads(win), group=cfg.groups)
    return activation(g, node, y, cfg.activation)


@onnx_exporters.register("conv2d_transpose")
def _conv_transpose(g, node, x):
    """ConvTranspose onto the layer's output size: the pads are those of the conv2d that
    maps the output back to the input, ``output_padding`` the rows it leaves unread
    (as trainctl.autodiff.ops.conv.conv2d_transpose)."""
    layer, cfg = node.layer, node.layer.config
    k = tuple(layer.kernel.shape[2:])
    out = tuple(node.output_shape[1:])
    win = window(node.type, (1, node.output_shape[0], *out), k, cfg.strides, cfg.padding,
                 cfg.dilation_rate, "kernel")
    spans = [(ki - 1) * d + 1 for ki, d in zip(k, win.dilation)]
    extra = [m + lo + hi - ((n - 1) * s + sp) for m, (lo, hi), n, s, sp in
             zip(out, win.pads, layer.input_shape[1:], win.strides, spans)]
    args = [x, g.weight(layer.kernel)] + ([g.weight(layer.bias)] if layer.bias is not None else [])
    y = g.op("ConvTranspose", args, node.name, kernel_shape=list(k), strides=list(win.strides),
             dilations=list(win.dilation), pads=_pads(win), output_padding=extra,
             group=cfg.groups)
    return activation(g, node, y, cfg.activation)


def _pool(op_type: str, **attrs):
    def export(g, node, x):
        cfg = node.layer.config
        ks = pair(cfg.pool_size, 2)
        ss = pair(cfg.strides, 2) if cfg.strides is not None else ks
        win = window(node.type, _in_shape(node), ks, ss, cfg.padding, 1, "pool window")
        return g.op(op_type, [x], node.name, kernel_shape=list(ks), strides=list(ss),
                    pads=_pads(win), **attrs)
    export.__name__ = f"export_{op_type.lower()}"
    return export


onnx_exporters.register("max_pooling2d")(_pool("MaxPool"))  # pads never win a max
onnx_exporters.register("average_pooling2d")(_pool("AveragePool", count_include_pad=0))


def _global(op_type: str):
    def export(g, node, x):
        y = g.op(op_type, [x], node.name)
        return y if node.layer.config.keepdims else g.op("Flatten", [y], node.name, axis=1)
    export.__name__ = f"export_{op_type.lower()}"
    return export


onnx_exporters.register("global_average_pooling2d")(_global("GlobalAveragePool"))
onnx_exporters.register("global_max_pooling2d")(_global("GlobalMaxPool"))


# ---- normalization ----------------------------------------------------------------------

@onnx_exporters.register("batch_normalization")
def _batch_norm(g, node, x):
    """Inference: the moving statistics. Channel axis 1: ONNX BatchNormalization with the
    weights themselves; another axis: x·scale + shift with scale = gamma/sqrt(var + ε),
    shift = beta - mean·scale computed as the layer does."""
    layer, cfg = node.layer, node.layer.config
    c = layer.moving_mean.shape[0]
    if layer._axis == 1:
        ones = np.ones((c,), dtype=g.float_type)
        gamma = g.weight(layer.gamma) if layer.gamma is not None else g.const(f"{node.name}/ones", ones)
        beta = (g.weight(layer.beta) if layer.beta is not None
                else g.const(f"{node.name}/zeros", np.zeros_like(ones)))
        return g.op("BatchNormalization", [x, gamma, beta, g.weight(layer.moving_mean),
                                           g.weight(layer.moving_variance)],
                    node.name, epsilon=cfg.epsilon)
    rank = len(layer.input_shape) + 1
    shape = (c,) + (1,) * (rank - layer._axis - 1)
    with torch.no_grad():
        scale = torch.rsqrt(layer.moving_variance.data + cfg.epsilon)
        if layer.gamma is not None:
            scale = layer.gamma.data * scale
        shift = -layer.moving_mean.data * scale
        if layer.beta is not None:
            shift = shift + layer.beta.data
    y = g.op("Mul", [x, g.const(f"{node.name}/scale", to_numpy(scale.reshape(shape)))], node.name)
    return g.op("Add", [y, g.const(f"{node.name}/shift", to_numpy(shift.reshape(shape)))], node.name)


@onnx_exporters.register("layer_normalization")
def _layer_norm(g, node, x):
    """(x - μ)/sqrt(σ² + ε)·gamma + beta, μ and σ² (biased) over the layer's axes."""
    layer = node.layer
    axes = list(layer._axes)
    rank = len(layer.input_shape) + 1
    bshape = tuple(layer.input_shape[a - 1] if a in axes else 1 for a in range(1, rank))
    mean = g.op("ReduceMean", [x], node.name, axes=axes, keepdims=1)
    d = g.op("Sub", [x, mean], node.name)
    var = g.op("ReduceMean", [g.op("Mul", [d, d], node.name)], node.name, axes=axes, keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [var, g.scalar(f"{node.name}/epsilon", layer.config.epsilon)],
                              node.name)], node.name)
    y = g.op("Div", [d, std], node.name)
    if layer.gamma is not None:
        y = g.op("Mul", [y, g.weight(layer.gamma, to_numpy(layer.gamma).reshape(bshape))], node.name)
    if layer.beta is not None:
        y = g.op("Add", [y, g.weight(layer.beta, to_numpy(layer.beta).reshape(bshape))], node.name)
    return y
