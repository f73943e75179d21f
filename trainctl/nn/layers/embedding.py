"""embedding and positional_embedding.

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_seq`.
"""

from __future__ import annotations

import math

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import DEFAULT_FLOAT
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds


@layers.register("embedding")
class Embedding(Layer, kinds.Embedding):
    """ids [N, ...] -> embeddings[ids] [N, ..., output_dim] (table [input_dim, output_dim]).

    Ids are integers; floating inputs holding whole numbers (what a numeric data source
    gives) are truncated to int64, as Keras casts. An id outside [0, input_dim) raises
    ShapeError. The table's gradient is a scatter-add over the ids used.
    """

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg = self.config
        self.embeddings = self.add_weight("embeddings", (cfg.input_dim, cfg.output_dim),
                                          cfg.embeddings_initializer, device,
                                          regularizer=cfg.embeddings_regularizer)
        return out

    def call(self, x, training=False):
        if x.dtype.is_floating_point:
            x = ops.cast(x, torch.int64)
        return ops.embedding_lookup(self.embeddings, x)


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """[length, dim]: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same)
    (Vaswani et al. 2017, section 3.5)."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    rate = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    out = torch.zeros(length, dim, dtype=torch.float64)
    out[:, 0::2] = torch.sin(pos * rate)
    out[:, 1::2] = torch.cos(pos * rate)[:, : dim // 2]
    return out


@layers.register("positional_embedding")
class PositionalEmbedding(Layer, kinds.PositionalEmbedding):
    """x [N, T, D] -> x + P[:T] with P [sequence_length, D] learned (``positions``
    weight) or fixed sinusoids (:func:`sinusoids`, no weight)."""

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg = self.config
        shape = (cfg.sequence_length, input_shape[1])
        if cfg.learned:
            self.positions = self.add_weight("positions", shape, cfg.initializer, device)
        else:
            self.positions = Tensor(sinusoids(*shape).to(device=device, dtype=DEFAULT_FLOAT))
        return out

    def call(self, x, training=False):
        table = self.positions
        if not self.config.learned and table.dtype != x.dtype:
            table = ops.cast(table, x.dtype)
        return x + table[: x.shape[1]]
