"""Sequence layers against torch.nn (float64): embedding (nn.Embedding), positional
embedding, multi_head_attention (nn.MultiheadAttention and a hand einsum reference), lstm
and gru (nn.LSTM / nn.GRU with weights copied and gates mapped), gradients via our tape vs
torch.autograd. torch.nn is used only as an oracle."""

from __future__ import annotations

import math

import pytest
import torch

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn.layers import GRU, LSTM, Embedding, MultiHeadAttention, PositionalEmbedding

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def to64(layer, seed=10, scale=0.5):
    for i, w in enumerate(layer.weights):
        w.data = scale * randn(*w.shape, seed=seed + i)
    return layer


def grads(layer, x_t, up, inputs=None, training=False):
    """Our gradients of Σ layer(x)·up for the layer's weights and x."""
    x = tc.Variable(x_t, dtype="float64")
    with tc.GradientTape() as tape:
        y = layer(x, training=training)
        loss = tc.ops.sum(y * tc.tensor(up))
    return y, tape.gradient(loss, [*layer.weights, x])


def test_embedding_equals_torch_and_accepts_whole_floats():
    layer = Embedding(input_dim=7, output_dim=3)
    assert layer.build((4,)) == (4, 3)
    to64(layer)
    ids = torch.tensor([[0, 6, 2, 2], [1, 1, 5, 3]])
    ref = torch.nn.Embedding(7, 3, dtype=F64)
    with torch.no_grad():
        ref.weight.copy_(layer.embeddings.data)
    torch.testing.assert_close(layer(tc.tensor(ids)).data, ref(ids).detach())
    torch.testing.assert_close(layer(tc.tensor(ids.to(F64))).data, ref(ids).detach())
    up = randn(2, 4, 3, seed=1)
    with tc.GradientTape() as tape:
        loss = tc.ops.sum(layer(tc.tensor(ids)) * tc.tensor(up))
    (ours,) = tape.gradient(loss, [layer.embeddings])
    torch.autograd.backward((ref(ids) * up).sum())
    torch.testing.assert_close(ours.data, ref.weight.grad)  # repeated ids add up
    with pytest.raises(ShapeError, match="out of range"):
        layer(tc.tensor(torch.tensor([[7, 0, 0, 0]])))


def test_embedding_default_initializer_is_keras_uniform():
    tc.manual_seed(0)
    layer = Embedding(input_dim=100, output_dim=50)
    layer.build((3,))
    values = layer.embeddings.data
    assert values.abs().max().item() <= 0.05 and values.abs().max().item() > 0.049


def test_positional_embedding_learned_and_sinusoidal():
    x = randn(2, 5, 4, seed=2)
    learned = PositionalEmbedding(sequence_length=8)
    learned.build((5, 4))
    assert learned.positions.shape == (8, 4) and learned.positions.trainable
    to64(learned)
    torch.testing.assert_close(learned(tc.tensor(x)).data, x + learned.positions.data[:5])
    fixed = PositionalEmbedding(sequence_length=8, learned=False)
    fixed.build((5, 4))
    assert fixed.weights == []
    pos = torch.arange(5, dtype=F64)[:, None]
    want = torch.stack([torch.sin(pos[:, 0]), torch.cos(pos[:, 0]),
                        torch.sin(pos[:, 0] / 100), torch.cos(pos[:, 0] / 100)], dim=1)
    torch.testing.assert_close(fixed(tc.tensor(x)).data, x + want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ShapeError, match="exceed sequence_length"):
        PositionalEmbedding(sequence_length=4).build((5, 4))


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_equals_torch_multihead_attention(causal):
    d, h = 8, 2
    layer = MultiHeadAttention(num_heads=h, key_dim=d // h, use_causal_mask=causal)
    assert layer.build((5, d)) == (5, d)
    to64(layer)
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True, dtype=F64)
    with torch.no_grad():  # Keras [d, H, k] kernels -> torch's [H·k, d] rows
        ref.in_proj_weight.copy_(torch.cat([w.data.reshape(d, d).T
                                            for w in (layer.wq, layer.wk, layer.wv)]))
        ref.in_proj_bias.copy_(torch.cat([b.data.reshape(d)
                                          for b in (layer.bq, layer.bk, layer.bv)]))
        ref.out_proj.weight.copy_(layer.wo.data.reshape(d, d).T)
        ref.out_proj.bias.copy_(layer.bo.data)
    xt, up = randn(3, 5, d, seed=1), randn(3, 5, d, seed=2)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1) if causal else None
    y, ours = grads(layer, xt, up)
    xr = xt.clone().requires_grad_(True)
    want, _ = ref(xr, xr, xr, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(y.data, want.detach(), rtol=1e-10, atol=1e-10)
    torch.autograd.backward((want * up).sum())
    torch.testing.assert_close(ours[-1].data, xr.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(ours[0].data.reshape(d, d).T, ref.in_proj_weight.grad[:d],
                               rtol=1e-9, atol=1e-10)


def test_cross_attention_equals_einsum_reference():
    layer = MultiHeadAttention(num_heads=3, key_dim=2, value_dim=4, use_bias=False)
    assert layer.build([(4, 5), (6, 7), (6, 3)]) == (4, 5)
    to64(layer)
    q, v, k = randn(2, 4, 5, seed=3), randn(2, 6, 7, seed=4), randn(2, 6, 3, seed=5)
    y = layer([tc.tensor(q), tc.tensor(v), tc.tensor(k)])
    Q = torch.einsum("btd,dhk->bhtk", q, layer.wq.data)
    K = torch.einsum("bsd,dhk->bhsk", k, layer.wk.data)
    V = torch.einsum("bsd,dhv->bhsv", v, layer.wv.data)
    att = torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(2), dim=-1)
    want = torch.einsum("bhtv,hvd->btd", att @ V, layer.wo.data)
    torch.testing.assert_close(y.data, want, rtol=1e-10, atol=1e-10)


def test_attention_shape_errors():
    with pytest.raises(ShapeError, match="same number of steps"):
        MultiHeadAttention(num_heads=1, key_dim=2).build([(4, 5), (6, 7), (5, 3)])
    with pytest.raises(ShapeError, match=r"sequences \[steps, features\]"):
        MultiHeadAttention(num_heads=1, key_dim=2).build((4, 5, 6))


def lstm_reference(layer, d, u):
    ref = torch.nn.LSTM(d, u, batch_first=True, dtype=F64)
    with torch.no_grad():  # same gate order i, f, c(g), o
        ref.weight_ih_l0.copy_(layer.kernel.data.T)
        ref.weight_hh_l0.copy_(layer.recurrent_kernel.data.T)
        ref.bias_ih_l0.copy_(layer.bias.data)
        ref.bias_hh_l0.zero_()
    return ref


def gru_reference(layer, d, u):
    ref = torch.nn.GRU(d, u, batch_first=True, dtype=F64)

    def rzn(w):  # Keras z, r, h -> torch r, z, n along the last axis
        return torch.cat([w[..., u:2 * u], w[..., :u], w[..., 2 * u:]], dim=-1)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(rzn(layer.kernel.data).T)
        ref.weight_hh_l0.copy_(rzn(layer.recurrent_kernel.data).T)
        ref.bias_ih_l0.copy_(rzn(layer.bias.data[0]))
        ref.bias_hh_l0.copy_(rzn(layer.bias.data[1]))
    return ref


@pytest.mark.parametrize("cls, reference", [(LSTM, lstm_reference), (GRU, gru_reference)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_equals_torch(cls, reference, return_sequences):
    d, u, t = 3, 4, 5
    layer = cls(units=u, return_sequences=return_sequences)
    assert layer.build((t, d)) == ((t, u) if return_sequences else (u,))
    to64(layer)
    ref = reference(layer, d, u)
    xt = randn(2, t, d, seed=1)
    up = randn(2, t, u, seed=2) if return_sequences else randn(2, u, seed=2)
    y, ours = grads(layer, xt, up)
    xr = xt.clone().requires_grad_(True)
    seq, _ = ref(xr)
    want = seq if return_sequences else seq[:, -1]
    torch.testing.assert_close(y.data, want.detach(), rtol=1e-10, atol=1e-10)
    torch.autograd.backward((want * up).sum())
    torch.testing.assert_close(ours[-1].data, xr.grad, rtol=1e-9, atol=1e-10)
    g_rec = ours[1].data  # recurrent_kernel's gradient, Keras layout [u, gates·u]
    if cls is GRU:
        g_rec = torch.cat([g_rec[:, u:2 * u], g_rec[:, :u], g_rec[:, 2 * u:]], dim=1)
    torch.testing.assert_close(g_rec.T, ref.weight_hh_l0.grad, rtol=1e-9, atol=1e-10)


def test_recurrent_keras_initialisation():
    tc.manual_seed(0)
    layer = LSTM(units=4)
    layer.build((3, 2))
    u = layer.recurrent_kernel.data  # [4, 16], orthonormal rows
    torch.testing.assert_close(u @ u.T, torch.eye(4), rtol=1e-5, atol=1e-5)
    assert torch.equal(layer.bias.data, torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 8))
    gru = GRU(units=2)
    gru.build((3, 2))
    assert gru.bias.shape == (2, 6) and torch.equal(gru.bias.data, torch.zeros(2, 6))


@pytest.mark.parametrize("cls, torch_cls", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
def test_recurrent_without_bias_equals_torch(cls, torch_cls):
    d, u = 2, 3
    layer = cls(units=u, use_bias=False, return_sequences=True)
    layer.build((4, d))
    assert layer.bias is None
    to64(layer)
    ref = torch_cls(d, u, batch_first=True, bias=False, dtype=F64)
    k, r = layer.kernel.data, layer.recurrent_kernel.data
    if cls is GRU:
        k, r = (torch.cat([w[:, u:2 * u], w[:, :u], w[:, 2 * u:]], dim=1) for w in (k, r))
    with torch.no_grad():
        ref.weight_ih_l0.copy_(k.T)
        ref.weight_hh_l0.copy_(r.T)
    x = randn(2, 4, d, seed=3)
    torch.testing.assert_close(layer(tc.tensor(x)).data, ref(x)[0].detach())


def test_attention_dropout_only_in_training():
    layer = MultiHeadAttention(num_heads=2, key_dim=2, dropout=0.5)
    layer.build((6, 4))
    to64(layer)
    plain = MultiHeadAttention(num_heads=2, key_dim=2)
    plain.build((6, 4))
    for a, b in zip(plain.weights, layer.weights):
        a.data = b.data
    x = tc.tensor(randn(3, 6, 4, seed=4))
    torch.testing.assert_close(layer(x).data, plain(x).data)
    tc.manual_seed(1)
    dropped = layer(x, training=True).data
    assert not torch.allclose(dropped, plain(x).data)
