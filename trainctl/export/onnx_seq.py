"""ONNX exporters of the sequence layers: embedding, positional_embedding,
multi_head_attention, lstm, gru (registered in
:data:`trainctl.export.onnx_layers.onnx_exporters`).

The recurrent layers are unrolled over their steps as the layers themselves are (the
number of steps is fixed by the spec), with the layers' own activations, so any
``activation``/``recurrent_activation`` that has an ONNX exporter works; ONNX's LSTM/GRU
operators are not used (their gate order and activation set differ).
"""

from __future__ import annotations

import math

import numpy as np

from trainctl.export.onnx_graph import OnnxGraph, to_numpy
from trainctl.export.onnx_layers import activation, onnx_exporters
from trainctl.export.walk import NodeInfo

_MASKED = -1e9  # as trainctl.nn.layers.attention


@onnx_exporters.register("embedding")
def _embedding(g, node, x):
    """Gather rows of the table; ids cast to int64 (floats truncated, as the layer)."""
    ids = g.op("Cast", [x], node.name, to=7)  # TensorProto.INT64
    return g.op("Gather", [g.weight(node.layer.embeddings), ids], node.name, axis=0)


@onnx_exporters.register("positional_embedding")
def _positional(g, node, x):
    """x + P[:T] (T, the input's steps, is fixed by the spec)."""
    layer = node.layer
    t = layer.input_shape[0]
    table = to_numpy(layer.positions)[:t].astype(g.float_type)
    name = (g.weight(layer.positions, table) if layer.config.learned
            else g.const(f"{node.name}/sinusoids", table))
    return g.op("Add", [x, name], node.name)


@onnx_exporters.register("multi_head_attention")
def _attention(g, node, xs):
    """Per head softmax(q kᵀ/sqrt(key_dim) + causal mask) v with Keras' einsum projections
    (trainctl.nn.layers.attention); attention dropout is off at inference."""
    layer, cfg, base = node.layer, node.layer.config, node.name
    query = xs[0]
    value = xs[1] if len(xs) > 1 else query
    key = xs[2] if len(xs) > 2 else value

    def project(x, w, b):
        y = g.op("Einsum", [x, g.weight(w)], base, equation="btd,dhk->bthk")
        return y if b is None else g.op("Add", [y, g.weight(b)], base)
    q = g.op("Mul", [project(query, layer.wq, layer.bq),
                     g.scalar(f"{base}/scale", 1.0 / math.sqrt(cfg.key_dim))], base)
    k = project(key, layer.wk, layer.bk)
    v = project(value, layer.wv, layer.bv)
    scores = g.op("Einsum", [q, k], base, equation="bthk,bshk->bhts")
    if cfg.use_causal_mask:
        shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
        tq = shapes[0][0]
        tv = shapes[1][0] if len(shapes) > 1 else tq
        hidden = np.triu(np.ones((tq, tv), dtype=bool), 1)
        mask = np.where(hidden, _MASKED, 0.0).astype(g.float_type)
        scores = g.op("Add", [scores, g.const(f"{base}/causal_mask", mask)], base)
    attn = g.op("Softmax", [scores], base, axis=-1)
    o = g.op("Einsum", [attn, v], base, equation="bhts,bshv->bthv")
    y = g.op("Einsum", [o, g.weight(layer.wo)], base, equation="bthv,hvd->btd")
    return y if layer.bo is None else g.op("Add", [y, g.weight(layer.bo)], base)


class _Steps:
    """Helpers for unrolling a recurrent layer at node ``node``."""

    def __init__(self, g: OnnxGraph, node: NodeInfo):
        self.g, self.node, self.base = g, node, node.name
        self.u = node.layer.config.units

    def op(self, op_type, inputs, **attrs):
        return self.g.op(op_type, inputs, self.base, **attrs)

    def step(self, xw: str, t: int) -> str:
        """xw[:, t]."""
        return self.op("Gather", [xw, self.g.ints(f"{self.base}/t{t}", [t])], axis=1)

    def part(self, z: str, k: int) -> str:
        """z[..., k·u:(k+1)·u] (one gate)."""
        g, u = self.g, self.u
        return self.op("Slice", [z, g.ints(f"{self.base}/start", [k * u]),
                                 g.ints(f"{self.base}/end", [(k + 1) * u]),
                                 g.ints(f"{self.base}/axis", [-1])])

    def act(self, x: str) -> str:
        return activation(self.g, self.node, x, self.node.layer.config.activation)

    def rec(self, x: str) -> str:
        return activation(self.g, self.node, x, self.node.layer.config.recurrent_activation)


@onnx_exporters.register("lstm")
def _lstm(g, node, x):
    """z = x_t W + h U + b; c = σ(f)·c + σ(i)·act(c̃), h = σ(o)·act(c) (the layer's
    formula, gates i, f, c̃, o)."""
    s, layer = _Steps(g, node), node.layer
    xw = s.op("MatMul", [x, g.weight(layer.kernel)])
    if layer.bias is not None:
        xw = s.op("Add", [xw, g.weight(layer.bias)])
    h = c = None
    states = []
    for t in range(layer.input_shape[0]):
        z = s.step(xw, t)  # [N, 1, 4u]
        if h is not None:
            z = s.op("Add", [z, s.op("MatMul", [h, g.weight(layer.recurrent_kernel)])])
        i, f, cc, o = (s.part(z, k) for k in range(4))
        cand = s.op("Mul", [s.rec(i), s.act(cc)])
        c = cand if c is None else s.op("Add", [s.op("Mul", [s.rec(f), c]), cand])
        h = s.op("Mul", [s.rec(o), s.act(c)])
        states.append(h)
    return _last(s, states)


@onnx_exporters.register("gru")
def _gru(g, node, x):
    """Keras' reset_after GRU as the layer computes it: z = σ(xz + hz), r = σ(xr + hr),
    ĥ = act(xĥ + r·hĥ), h = z·h + (1 - z)·ĥ."""
    s, layer = _Steps(g, node), node.layer
    xw = s.op("MatMul", [x, g.weight(layer.kernel)])
    b_x = b_h = None
    if layer.bias is not None:
        bias = g.weight(layer.bias)
        b_x = s.op("Gather", [bias, g.const(f"{node.name}/row0", np.array(0, dtype=np.int64))], axis=0)
        b_h = s.op("Gather", [bias, g.const(f"{node.name}/row1", np.array(1, dtype=np.int64))], axis=0)
        xw = s.op("Add", [xw, b_x])
    one = g.scalar(f"{node.name}/one", 1.0)
    h = None
    states = []
    for t in range(layer.input_shape[0]):
        a = s.step(xw, t)  # [N, 1, 3u]
        if h is None:
            hu = b_h
        else:
            hu = s.op("MatMul", [h, g.weight(layer.recurrent_kernel)])
            if b_h is not None:
                hu = s.op("Add", [hu, b_h])
        xz, xr, xh = (s.part(a, k) for k in range(3))
        if hu is None:
            z, hh = s.rec(xz), s.act(xh)
        else:
            hz, hr, hh_ = (s.part(hu, k) for k in range(3))
            z, r = s.rec(s.op("Add", [xz, hz])), s.rec(s.op("Add", [xr, hr]))
            hh = s.act(s.op("Add", [xh, s.op("Mul", [r, hh_])]))
        keep = s.op("Mul", [s.op("Sub", [one, z]), hh])
        h = keep if h is None else s.op("Add", [s.op("Mul", [z, h]), keep])
        states.append(h)
    return _last(s, states)


def _last(s: _Steps, states: list[str]) -> str:
    """States are [N, 1, units] (Gather with a [1] index keeps the step axis): every
    state joined on it, or the last one flattened to [N, units]."""
    if s.node.layer.config.return_sequences:
        return s.op("Concat", states, axis=1)
    return s.op("Flatten", [states[-1]], axis=1)
