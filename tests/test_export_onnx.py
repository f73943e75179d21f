"""ONNX export (trainctl.export, ``trainctl export``): every exporter against the layer
itself, with onnxruntime as the oracle (outputs within 1e-5, at two batch sizes: the batch
axis is dynamic); every example spec exported from a checkpoint through the CLI; a layer
without an exporter named in the error; nothing written on error."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export_helpers import (CASES, SPECS, STATE, assert_same_outputs, feeds_for,  # noqa: E402
                            graph_model, ours, perturb, session)
from trainctl.cli.app import app  # noqa: E402
from trainctl.export import ExportError, model_graph, onnx_exporters, to_onnx  # noqa: E402
from trainctl.io import save_checkpoint  # noqa: E402
from trainctl.nn.layers import layers  # noqa: E402
from trainctl.spec import load_spec  # noqa: E402


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
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), None, STATE)
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
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), None, STATE)
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
    ckpt = save_checkpoint(tmp_path / "ckpt", _spec_model(path).state_dict(), None, STATE)
    monkeypatch.delitem(onnx_exporters._items, "batch_normalization")
    out = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["export", str(path), "--checkpoint", str(ckpt), "-o", str(out)])
    assert result.exit_code == 2
    assert "node 'b1_bn1' is a batch_normalization layer" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.glob("*.onnx*")) == [] \
        and list(tmp_path.glob(".model.onnx*")) == []


def test_a_model_over_the_protobuf_limit_is_a_clear_error(monkeypatch):
    from trainctl.export import onnx_graph

    model = graph_model(CASES["merges_and_shared"])
    monkeypatch.setattr(onnx_graph, "MAX_BYTES", 100)
    with pytest.raises(ExportError, match="over protobuf's 2 GiB limit.*--format safetensors"):
        to_onnx(model)
