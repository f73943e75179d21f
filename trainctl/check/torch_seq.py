"""Sequence layers in plain PyTorch for :mod:`trainctl.check.torch_layers`: lstm and gru on
torch's fused ``nn.LSTM`` / ``nn.GRU``, multi_head_attention on
``F.scaled_dot_product_attention``.

Layouts: torch's LSTM takes the gates in our (Keras') order i, f, g, o with weights
[4u, d] (our kernel transposed) and two biases (ours goes to ``bias_ih``; ``bias_hh`` is
frozen at 0); torch's GRU orders the gates r, z, n where Keras has z, r, h, and its
``bias_ih`` / ``bias_hh`` are our bias rows 0 / 1 (torch's GRU is Keras' reset_after form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainctl.check.torch_layers import Translation, _frozen, _load, _on, _same, torch_layers
from trainctl.errors import TrainctlError


class Recurrent(nn.Module):
    """``rnn`` (batch_first) from a zero state: every output [N, T, u] or the last [N, u]."""

    def __init__(self, rnn: nn.Module, return_sequences: bool):
        super().__init__()
        self.rnn, self.return_sequences = rnn, return_sequences

    def forward(self, x):
        out, _ = self.rnn(x)
        return out if self.return_sequences else out[:, -1]


def _rnn(layer, cls) -> nn.Module:
    cfg = layer.config
    if (cfg.activation, cfg.recurrent_activation) != ("tanh", "sigmoid"):
        raise TrainctlError(f"--compare-torch: torch's {cls.__name__} fixes activation tanh "
                            f"and recurrent_activation sigmoid; layer {layer.name!r} has "
                            f"{cfg.activation} / {cfg.recurrent_activation}")
    return _on(cls(layer.input_shape[1], cfg.units, bias=cfg.use_bias, batch_first=True),
               layer.kernel)


@torch_layers.register("lstm")
def lstm(layer) -> Translation:
    rnn = _rnn(layer, nn.LSTM)
    _load(rnn.weight_ih_l0, layer.kernel.data.T)
    _load(rnn.weight_hh_l0, layer.recurrent_kernel.data.T)
    pairs = [(layer.kernel, (rnn.weight_ih_l0,), lambda w: w.T),
             (layer.recurrent_kernel, (rnn.weight_hh_l0,), lambda w: w.T)]
    if layer.bias is not None:
        _load(rnn.bias_ih_l0, layer.bias.data)
        _frozen(rnn.bias_hh_l0, 0.0)
        pairs.append((layer.bias, (rnn.bias_ih_l0,), _same))
    return Translation(Recurrent(rnn, layer.config.return_sequences), pairs)


def _swap_zr(w: torch.Tensor) -> torch.Tensor:
    """Swap the first two thirds of the last axis (Keras z, r, h ↔ torch r, z, n)."""
    a, b, c = w.chunk(3, dim=-1)
    return torch.cat([b, a, c], dim=-1)


@torch_layers.register("gru")
def gru(layer) -> Translation:
    rnn = _rnn(layer, nn.GRU)
    _load(rnn.weight_ih_l0, _swap_zr(layer.kernel.data).T)
    _load(rnn.weight_hh_l0, _swap_zr(layer.recurrent_kernel.data).T)
    pairs = [(layer.kernel, (rnn.weight_ih_l0,), lambda w: _swap_zr(w.T)),
             (layer.recurrent_kernel, (rnn.weight_hh_l0,), lambda w: _swap_zr(w.T))]
    if layer.bias is not None:
        _load(rnn.bias_ih_l0, _swap_zr(layer.bias.data[0]))
        _load(rnn.bias_hh_l0, _swap_zr(layer.bias.data[1]))
        pairs.append((layer.bias, (rnn.bias_ih_l0, rnn.bias_hh_l0),
                      lambda a, b: torch.stack([_swap_zr(a), _swap_zr(b)])))
    return Translation(Recurrent(rnn, layer.config.return_sequences), pairs)


class Attention(nn.Module):
    """Keras' MultiHeadAttention: per-head projections (weights in Keras' einsum layouts,
    flattened to matrices here), F.scaled_dot_product_attention (scale 1/sqrt(key_dim),
    ``is_causal``: the top-left aligned lower triangle), the output projection."""

    def __init__(self, layer):
        super().__init__()
        cfg = layer.config
        self.heads, self.causal, self.dropout = cfg.num_heads, cfg.use_causal_mask, cfg.dropout
        for name in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo"):
            var = getattr(layer, name)
            setattr(self, name, None if var is None else nn.Parameter(var.data.detach().clone()))

    def _heads(self, x, w, b):
        y = x @ w.flatten(1)
        if b is not None:
            y = y + b.flatten()
        return y.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # [N, H, T, k]

    def forward(self, inputs):
        xs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        query = xs[0]
        value = xs[1] if len(xs) > 1 else query
        key = xs[2] if len(xs) > 2 else value
        q, k, v = (self._heads(x, w, b) for x, w, b in ((query, self.wq, self.bq),
                                                         (key, self.wk, self.bk),
                                                         (value, self.wv, self.bv)))
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = o.transpose(1, 2).flatten(2) @ self.wo.flatten(0, 1)
        return y if self.bo is None else y + self.bo


@torch_layers.register("multi_head_attention")
def attention(layer) -> Translation:
    mod = Attention(layer)
    pairs = [(getattr(layer, name), (getattr(mod, name),), _same)
             for name in ("wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo")
             if getattr(layer, name) is not None]
    return Translation(mod, pairs)
