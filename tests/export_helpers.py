"""Shared by the export tests: small graphs covering every layer type with an exporter
(``CASES``), weights moved off their initial values, inputs, and running a model in
trainctl and in onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trainctl.autodiff.tensor import Tensor
from trainctl.backend.random import manual_seed, rng_state, set_rng_state
from trainctl.export import model_graph, to_onnx
from trainctl.graph.build import graph_model_from_plan
from trainctl.spec import SpecDoc
from trainctl.spec.kinds.dag import plan_graph

#: state.json of the test checkpoints: no preprocessing (the inputs are the model's own)
STATE = {"step": 0, "preprocessing": []}

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


def perturb(model, seed: int = 0) -> None:
    """Move every weight off its initial value (zero biases, unit gamma, zero moving mean
    would hide a wrong exporter): + 0.2·N(0, 1), variances in [0.5, 1.5]."""
    gen = torch.Generator().manual_seed(seed)
    for v in model.variables:
        if v.name.endswith("moving_variance"):
            v.data.copy_(torch.rand(v.shape, generator=gen) + 0.5)
        else:
            v.data.add_(0.2 * torch.randn(v.shape, generator=gen))


def graph_model(section: dict):
    """The built model of a ``model:`` section, initialised from seed 0 whatever ran before
    (the global generator is put back afterwards), weights perturbed."""
    state = rng_state()
    manual_seed(0)
    try:
        model = graph_model_from_plan(plan_graph(SpecDoc("t.yaml", {"model": section})), "t")
    finally:
        set_rng_state(state)
    perturb(model)
    return model


def feeds_for(model, batch: int, seed: int = 1) -> dict[str, np.ndarray]:
    """Random inputs: N(0, 1) floats; ids in [0, input_dim) for an input an embedding reads
    (or [0, 5) for other integer inputs)."""
    rng = np.random.default_rng(seed)
    graph = model_graph(model)
    vocab = {n.inputs[0]: n.layer.config.input_dim for n in graph.nodes if n.type == "embedding"}
    out = {}
    for i in graph.inputs:
        if i.dtype.startswith("int") or i.name in vocab:
            out[i.name] = rng.integers(0, vocab.get(i.name, 5), size=(batch, *i.shape)).astype(i.dtype)
        else:
            out[i.name] = rng.normal(size=(batch, *i.shape)).astype(i.dtype)
    return out


def ours(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    tensors = {k: Tensor(torch.from_numpy(v)) for k, v in feeds.items()}
    arg = tensors if len(tensors) > 1 else next(iter(tensors.values()))
    return model(arg, training=False).data.numpy()


def session(data: bytes):
    import onnxruntime as ort

    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def assert_same_outputs(model, data: bytes | None = None) -> None:
    sess = session(data if data is not None else to_onnx(model).SerializeToString())
    for batch in (1, 7):
        feeds = feeds_for(model, batch, seed=batch)
        (theirs,) = sess.run(None, feeds)
        expected = ours(model, feeds)
        assert theirs.shape == expected.shape == (batch, *model.output_shape)
        assert theirs.dtype == expected.dtype
        assert np.abs(expected).max() > 1e-3  # not a vacuous comparison
        np.testing.assert_allclose(theirs, expected, rtol=1e-5, atol=1e-5)


def chain(input_shape, *layer_entries, dtype="float32") -> dict:
    nodes, prev = [], "x"
    for k, entry in enumerate(layer_entries):
        nodes.append({"name": f"n{k}", "inputs": [prev], **entry})
        prev = f"n{k}"
    return {"inputs": [{"name": "x", "shape": list(input_shape), "dtype": dtype}],
            "nodes": nodes, "outputs": [prev]}


ACTIVATIONS = ["linear", "relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "gelu",
               "silu", "elu", "leaky_relu", "softsign", "hard_sigmoid", "log_sigmoid"]

CASES = {
    "dense+activations": chain([6], *({"type": "dense", "units": 5, "activation": a}
                                      for a in ACTIVATIONS)),
    "dense_3d_no_bias": chain([4, 6], {"type": "dense", "units": 3, "use_bias": False}),
    "conv2d_same_strided": chain([3, 13, 14], {"type": "conv2d", "filters": 4, "kernel_size": 3,
                                             "strides": 2, "padding": "same", "activation": "relu"},
                                 {"type": "conv2d", "filters": 4, "kernel_size": [2, 3],
                                  "dilation_rate": 2, "groups": 2}),
    "conv1d": chain([3, 11], {"type": "conv1d", "filters": 5, "kernel_size": 4, "strides": 2,
                              "padding": "same"},
                    {"type": "conv1d", "filters": 2, "kernel_size": 3, "dilation_rate": 2}),
    "conv2d_transpose": chain([3, 5, 4], {"type": "conv2d_transpose", "filters": 4,
                                          "kernel_size": 3, "strides": 2, "padding": "same"},
                              {"type": "conv2d_transpose", "filters": 2, "kernel_size": [2, 3],
                               "strides": [1, 2], "activation": "tanh"}),
    "pools": chain([2, 7, 9], {"type": "max_pooling2d", "pool_size": 3, "strides": 2,
                               "padding": "same"},
                   {"type": "average_pooling2d", "pool_size": 2, "strides": 1, "padding": "same"},
                   {"type": "average_pooling2d", "pool_size": [2, 1]}),
    "global_pools": {"inputs": [{"name": "x", "shape": [3, 5, 4]}],
                     "nodes": [{"name": "avg", "type": "global_average_pooling2d", "inputs": "x"},
                               {"name": "max", "type": "global_max_pooling2d", "inputs": "x",
                                "keepdims": True},
                               {"name": "flat", "type": "flatten", "inputs": "max"},
                               {"name": "sum", "type": "add", "inputs": ["avg", "flat"]}],
                     "outputs": ["sum"]},
    "batch_norm_axes": chain([3, 4, 5], {"type": "batch_normalization"},
                             {"type": "batch_normalization", "axis": -1, "scale": False},
                             {"type": "batch_normalization", "axis": 2, "center": False}),
    "layer_norm": chain([3, 4, 5], {"type": "layer_normalization"},
                        {"type": "layer_normalization", "axis": [1, 3]},
                        {"type": "layer_normalization", "axis": [2, 3], "center": False}),
    "reshape_permute_flatten_dropout": chain(
        [12], {"type": "reshape", "target_shape": [3, 4]}, {"type": "permute", "dims": [2, 1]},
        {"type": "activation", "activation": "gelu"},
        {"type": "dropout", "rate": 0.5}, {"type": "flatten"}, {"type": "dense", "units": 2}),
    "merges_and_shared": {
        "inputs": [{"name": "a", "shape": [4]}, {"name": "b", "shape": [4]}],
        "nodes": [{"name": "da", "type": "dense", "units": 4, "inputs": "a"},
                  {"name": "db", "type": "dense", "shared_with": "da", "inputs": "b"},
                  {"name": "sub", "type": "subtract", "inputs": ["da", "db"]},
                  {"name": "mul", "type": "multiply", "inputs": ["sub", "a", "b"]},
                  {"name": "cat", "type": "concatenate", "inputs": ["mul", "da", "b"]}],
        "outputs": ["cat"]},
    "embedding_positions_attention": {
        "inputs": [{"name": "ids", "shape": [6], "dtype": "int64"}],
        "nodes": [{"name": "emb", "type": "embedding", "input_dim": 5, "output_dim": 8,
                   "inputs": "ids"},
                  {"name": "pos", "type": "positional_embedding", "sequence_length": 10},
                  {"name": "sin", "type": "positional_embedding", "sequence_length": 6,
                   "learned": False},
                  {"name": "att", "type": "multi_head_attention", "num_heads": 2, "key_dim": 3,
                   "value_dim": 4, "use_causal_mask": True, "inputs": ["sin"]},
                  {"name": "cross", "type": "multi_head_attention", "num_heads": 2, "key_dim": 4,
                   "use_bias": False, "inputs": ["att", "pos", "emb"]}],
        "outputs": ["cross"]},
    "float64_input_promotes": {
        "inputs": [{"name": "wide", "shape": [3], "dtype": "float64"}, {"name": "narrow", "shape": [3]}],
        "nodes": [{"name": "dw", "type": "dense", "units": 2, "inputs": "wide", "activation": "tanh"},
                  {"name": "dn", "type": "dense", "units": 2, "inputs": "narrow"},
                  {"name": "sum", "type": "add", "inputs": ["dw", "dn"]}],
        "outputs": ["sum"]},
    "embedding_float_ids": chain([3], {"type": "embedding", "input_dim": 5, "output_dim": 2}),
    "lstm_gru": chain([5, 3], {"type": "lstm", "units": 4, "return_sequences": True},
                      {"type": "gru", "units": 3, "return_sequences": True},
                      {"type": "gru", "units": 2, "use_bias": False, "activation": "softsign"}),
    "lstm_last": chain([4, 3], {"type": "lstm", "units": 3, "recurrent_activation": "hard_sigmoid"}),
}
