"""Merge layers (add, subtract, multiply, concatenate) and the multi-input Layer API:
lists in, one tensor out, shapes checked, gradients to every input against torch.autograd."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn.layers import (Add, Concatenate, Dense, MultiHeadAttention, Multiply,
                                Subtract, layers)

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("layer, fn, n", [
    (Add(), lambda xs: xs[0] + xs[1] + xs[2], 3),
    (Subtract(), lambda xs: xs[0] - xs[1], 2),
    (Multiply(), lambda xs: xs[0] * xs[1] * xs[2], 3),
    (Concatenate(axis=1), lambda xs: torch.cat(xs, dim=1), 2),
    (Concatenate(), lambda xs: torch.cat(xs, dim=-1), 3),
])
def test_merge_forward_and_gradients_equal_torch(layer, fn, n):
    shapes = [(2, 3)] * n
    assert layer.build(shapes) == tuple(fn([torch.zeros(1, *s) for s in shapes]).shape[1:])
    xs_t = [randn(4, 2, 3, seed=i) for i in range(n)]
    xs = [tc.Variable(x, dtype="float64") for x in xs_t]
    with tc.GradientTape() as tape:
        y = layer(xs)
        up = randn(*y.shape, seed=9)
        loss = tc.ops.sum(y * tc.tensor(up))
    ours = tape.gradient(loss, xs)
    ref = [x.clone().requires_grad_(True) for x in xs_t]
    want = fn(ref)
    torch.testing.assert_close(y.data, want.detach())
    torch.autograd.backward((want * up).sum())
    for g, r in zip(ours, ref):
        torch.testing.assert_close(g.data, r.grad)


def test_concatenate_other_axes_may_differ_on_the_joined_one():
    layer = Concatenate(axis=-2)
    assert layer.build([(2, 3), (5, 3)]) == (7, 3)


@pytest.mark.parametrize("layer, shapes, words", [
    (Add(), [(2, 3)], "at least 2 inputs"),
    (Add(), [(2, 3), (3, 2)], r"one shape, got \[2,3\], \[3,2\]"),
    (Subtract(), [(2,), (2,), (2,)], "exactly 2 inputs"),
    (Concatenate(axis=1), [(2, 3), (2, 4)], "other axes to agree"),
    (Concatenate(axis=0), [(2, 3), (2, 3)], "along axis 0"),
    (Concatenate(axis=3), [(2, 3), (2, 3)], "along axis 3"),
])
def test_merge_shape_errors(layer, shapes, words):
    with pytest.raises(ShapeError, match=words):
        layer.build(shapes)


def test_multi_input_flag_per_layer():
    multi = sorted(n for n in layers.names() if layers.get(n).multi_input())
    assert multi == ["add", "concatenate", "multi_head_attention", "multiply", "subtract"]
    assert (Add.min_inputs, Add.max_inputs) == (2, None)
    assert (MultiHeadAttention.min_inputs, MultiHeadAttention.max_inputs) == (1, 3)
    assert not Dense.multi_input()


def test_multi_input_layer_given_one_tensor_gets_a_list():
    """multi_head_attention in a ``layers:`` chain: build with one shape, call with one
    tensor, same as the one-item list."""
    tc.manual_seed(0)
    layer = MultiHeadAttention(num_heads=2, key_dim=2)
    assert layer.build((3, 4)) == (3, 4)
    x = tc.tensor(randn(2, 3, 4).float())
    torch.testing.assert_close(layer(x).data, layer([x]).data)


CHAIN = """
name: chain
data: {source: {type: iris}, batch_size: 32, standardize: true}
model:
  input_shape: [4]
  layers:
    - {type: reshape, target_shape: [4, 1]}
    - {type: dense, units: 8}
    - {type: positional_embedding, sequence_length: 4}
    - {type: multi_head_attention, num_heads: 2, key_dim: 4, use_causal_mask: true}
    - {type: LAYER}
    - {type: gru, units: 5}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 2}
"""


def test_attention_in_a_layers_chain_validates_and_trains():
    from trainctl.spec import Spec, SpecDoc
    from trainctl.spec.kinds.check import plan_layers
    from trainctl.train import Trainer, prepare
    doc = SpecDoc.from_text(CHAIN.replace("LAYER", "layer_normalization"), "chain.yaml")
    assert [p.name for p in plan_layers(doc)][3] == "multi_head_attention"
    setup = prepare(Spec.from_doc(doc), device="cpu")
    records = Trainer(setup).fit()
    assert records[-1]["loss"] < records[0]["loss"]


def test_merge_layer_in_a_chain_is_a_located_error():
    from trainctl.errors import SpecErrors
    from trainctl.spec import SpecDoc
    from trainctl.spec.kinds.check import plan_layers
    with pytest.raises(SpecErrors, match=r"chain.yaml:11:7: .*add needs at least 2 inputs, got 1"):
        plan_layers(SpecDoc.from_text(CHAIN.replace("LAYER", "add"), "chain.yaml"))
