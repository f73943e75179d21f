"""multi_head_attention (Keras' MultiHeadAttention; Vaswani et al. 2017).

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_seq`.
"""

from __future__ import annotations

import math

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import generator
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds
from trainctl.spec.kinds.layers import shape_list

_MASKED = -1e9  # added before the softmax where the causal mask hides a key (as Keras)


@layers.register("multi_head_attention")
class MultiHeadAttention(Layer, kinds.MultiHeadAttention):
    """inputs [query] | [query, value] | [query, value, key]; query [N, Tq, dq], value
    [N, Tv, dv], key [N, Tv, dk] -> [N, Tq, dq].

    Weights as Keras' EinsumDense layers: query_kernel [dq, H, key_dim], key_kernel [dk, H,
    key_dim], value_kernel [dv, H, value_dim], output_kernel [H, value_dim, dq], and biases
    [H, key_dim] / [H, value_dim] / [dq] when use_bias. Per head: softmax(q kᵀ / sqrt(key_dim)
    + mask) v; ``use_causal_mask`` hides key j > query i; attention dropout in training.
    """

    def build(self, input_shapes, device="cpu"):
        input_shapes = shape_list(input_shapes)
        out = self.compute_output_shape(input_shapes, self.config)
        cfg = self.config
        q, v = input_shapes[0], input_shapes[1] if len(input_shapes) > 1 else input_shapes[0]
        k = input_shapes[2] if len(input_shapes) > 2 else v
        h, kd, vd = cfg.num_heads, cfg.key_dim, cfg.value_dim or cfg.key_dim

        def weights(name, kernel, bias):
            w = self.add_weight(f"{name}_kernel", kernel, cfg.kernel_initializer, device,
                                regularizer=cfg.kernel_regularizer)
            b = (self.add_weight(f"{name}_bias", bias, cfg.bias_initializer, device,
                                 regularizer=cfg.bias_regularizer) if cfg.use_bias else None)
            return w, b
        self.wq, self.bq = weights("query", (q[1], h, kd), (h, kd))
        self.wk, self.bk = weights("key", (k[1], h, kd), (h, kd))
        self.wv, self.bv = weights("value", (v[1], h, vd), (h, vd))
        self.wo, self.bo = weights("output", (h, vd, q[1]), (q[1],))
        return out

    def call(self, inputs, training=False):
        cfg = self.config
        query = inputs[0]
        value = inputs[1] if len(inputs) > 1 else query
        key = inputs[2] if len(inputs) > 2 else value

        def project(x, w, b):
            y = ops.einsum("btd,dhk->bthk", x, w)
            return y if b is None else y + b
        q = project(query, self.wq, self.bq) * (1.0 / math.sqrt(cfg.key_dim))
        k = project(key, self.wk, self.bk)
        v = project(value, self.wv, self.bv)
        scores = ops.einsum("bthk,bshk->bhts", q, k)
        if cfg.use_causal_mask:
            tq, tv = scores.shape[2], scores.shape[3]
            hidden = torch.ones(tq, tv, dtype=torch.bool, device=scores.device).triu(1)
            bias = torch.zeros(tq, tv, dtype=scores.dtype, device=scores.device)
            scores = scores + Tensor(bias.masked_fill_(hidden, _MASKED))
        attn = ops.softmax(scores, axis=-1)
        if training and cfg.dropout > 0:
            keep = torch.empty(attn.shape, dtype=attn.dtype, device=attn.device)
            keep.bernoulli_(1.0 - cfg.dropout, generator=generator(attn.device))
            attn = attn * Tensor(keep.mul_(1.0 / (1.0 - cfg.dropout)))
        o = ops.einsum("bhts,bshv->bthv", attn, v)
        y = ops.einsum("bthv,hvd->btd", o, self.wo)
        return y if self.bo is None else y + self.bo
