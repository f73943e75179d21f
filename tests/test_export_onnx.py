"""ONNX export (trainctl.export, ``trainctl export``): every exporter against the layer
itself, with onnxruntime as the oracle (outputs within 1e-5, at two batch sizes: the batch
axis is dynamic); every example spec exported from a checkpoint through the CLI; a layer
without an exporter named in the error; nothing written on error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from trainctl.autodiff.tensor import Tensor  # noqa: E402
from trainctl.cli.app import app  # noqa: E402
from trainctl.export import ExportError, model_graph, onnx_exporters, to_onnx  # noqa: E402
from trainctl.graph.build import graph_model_from_plan  # noqa: E402
from trainctl.io import save_checkpoint  # noqa: E402
from trainctl.nn.layers import layers  # noqa: E402
from trainctl.spec import SpecDoc, load_spec  # noqa: E402
from trainctl.spec.kinds.dag import plan_graph  # noqa: E402

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
    model = graph_model_from_plan(plan_graph(SpecDoc("t.yaml", {"model": section})), "t")
    perturb(model)
    return model


def feeds_for(model, batch: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in model_graph(model).inputs:
        if i.dtype.startswith("int"):
            out[i.name] = rng.integers(0, 5, size=(batch, *i.shape)).astype(i.dtype)
        else:
            out[i.name] = rng.normal(size=(batch, *i.shape)).astype(i.dtype)
    return out


def ours(model, feeds: dict[str, np.ndarray]) -> np.ndarray:
    tensors = {k: Tensor(torch.from_numpy(v)) for k, v in feeds.items()}
    arg = tensors if len(tensors) > 1 else next(iter(tensors.values()))
    return model(arg, training=False).data.numpy()


def session(data: bytes):
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def assert_same_outputs(model, data: bytes | None = None) -> None:
    sess = session(data if data is not None else to_onnx(model).SerializeToString())
    for batch in (1, 7):
        feeds = feeds_for(model, batch, seed=batch)
        (theirs,) = sess.run(None, feeds)
        expected = ours(model, feeds)
        assert theirs.shape == expected.shape == (batch, *model.output_shape)
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
    "embedding_float_ids": chain([3], {"type": "embedding", "input_dim": 5, "output_dim": 2}),
    "lstm_gru": chain([5, 3], {"type": "lstm", "units": 4, "return_sequences": True},
                      {"type": "gru", "units": 3, "return_sequences": True},
                      {"type": "gru", "units": 2, "use_bias": False, "activation": "relu"}),
    "lstm_last": chain([4, 3], {"type": "lstm", "units": 3, "recurrent_activation": "hard_sigmoid"}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_graph_computes_what_the_layers_do(name):
    section = CASES[name]
    if name == "embedding_float_ids":
        model = graph_model(section)
        feeds = {"x": np.array([[0, 4, 2], [3, 1, 1]], dtype=np.float32)}
        (theirs,) = session(to_onnx(model).SerializeToString()).run(None, feeds)
        np.testing.assert_allclose(theirs, ours(model, feeds), rtol=1e-5, atol=1e-5)
        return
    assert_same_outputs(graph_model(section))


def test_every_registered_layer_type_has_an_exporter_and_a_case_here():
    missing = sorted(set(layers.names()) - set(onnx_exporters.names()))
    assert missing == [], f"layer types without an ONNX exporter: {missing}"
    covered = {n["type"] for case in CASES.values() for n in case["nodes"]}
    assert sorted(set(onnx_exporters.names()) - covered) == []


def test_a_layer_without_an_exporter_is_named(monkeypatch):
    model = graph_model(CASES["lstm_gru"])
    monkeypatch.delitem(onnx_exporters._items, "gru")
    with pytest.raises(ExportError, match=r"node 'n1' is a gru layer, which has no ONNX exporter"):
        to_onnx(model)


def test_the_graph_is_named_typed_and_checked():
    model = graph_model(CASES["merges_and_shared"])
    proto = to_onnx(model, {"trainctl.output": "values"})
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["a", "b"]
    assert [o.name for o in proto.graph.output] == ["cat"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 4
    assert proto.opset_import[0].version == 17
    inits = [t.name for t in proto.graph.initializer]
    assert inits.count("da/kernel") == 1 and "db/kernel" not in inits  # shared: stored once
    assert {p.key: p.value for p in proto.metadata_props} == {"trainctl.output": "values"}


# ---- the example specs, through the command ----------------------------------------------

@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_example_spec_exports_and_matches_onnxruntime(path, tmp_path):
    model = _spec_model(path)
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), None, {"step": 0})
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(path), "--checkpoint", str(ckpt), "-o", str(out)])
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["trainctl.output"] == "logits"  # every example spec trains on logits
    graph = model_graph(model)
    assert [i.name for i in proto.graph.input] == [i.name for i in graph.inputs]
    assert [o.name for o in proto.graph.output] == list(graph.outputs)
    assert_same_outputs(model, out.read_bytes())


def _spec_model(path):
    from trainctl.graph import build_model

    model = build_model(load_spec(path))
    perturb(model, seed=3)
    return model


def test_probabilities_come_out_as_the_model_returns_them(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPECS[0].read_text().replace("{type: dense, units: 1}",
                                                 "{type: dense, units: 1, activation: sigmoid}")
                    .replace("from_logits: true", "from_logits: false"))
    model = _spec_model(spec)
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), None, {"step": 0})
    out = tmp_path / "p.onnx"
    assert CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(ckpt), "-o",
                                    str(out)]).exit_code == 0
    proto = onnx.load(str(out))
    assert {p.key: p.value for p in proto.metadata_props}["trainctl.output"] == "probabilities"
    (probs,) = session(out.read_bytes()).run(None, feeds_for(model, 9))
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    assert_same_outputs(model, out.read_bytes())


def test_an_unexportable_spec_fails_with_one_line_and_no_file(tmp_path, monkeypatch):
    path = next(p for p in SPECS if p.stem == "digits_resnet")
    ckpt = save_checkpoint(tmp_path / "ckpt", _spec_model(path).state_dict(), None, {"step": 0})
    monkeypatch.delitem(onnx_exporters._items, "batch_normalization")
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(path), "--checkpoint", str(ckpt), "-o", str(out)])
    assert result.exit_code == 2
    assert "node 'b1_bn1' is a batch_normalization layer" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.glob("*.onnx*")) == [] \
        and list(tmp_path.glob(".model.onnx*")) == []
