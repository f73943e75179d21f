"""``trainctl export --format safetensors``: the weights alone plus a JSON description of
the graph, rebuilt into a model that computes exactly what the original does; and export
from a trained run (the checkpoint's spec checked against the one given)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.errors import SpecErrors
from trainctl.export.portable import load_portable
from trainctl.graph import build_model
from trainctl.io import save_checkpoint
from trainctl.spec import load_spec

from export_helpers import CASES, SPECS, STATE, feeds_for, graph_model, ours, perturb

TRAINED = """\
name: export-iris
seed: 0
data:
  source: {type: iris}
  batch_size: 32
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: tanh}
    - {type: dense, units: 3, activation: softmax}
loss: {type: sparse_categorical_crossentropy}
optimizer: {type: sgd, learning_rate: 0.1}
train: {epochs: 1}
"""


def export(spec, ckpt, out, *extra):
    return CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(ckpt), "-o", str(out),
                                    *extra])


def assert_identical(a, b, batch: int = 5) -> None:
    feeds = feeds_for(a, batch)
    assert np.array_equal(ours(a, feeds), ours(b, feeds))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_example_specs_round_trip_through_safetensors_and_json(path, tmp_path):
    model = build_model(load_spec(path))
    perturb(model, seed=5)
    ckpt = save_checkpoint(tmp_path / "ckpt", model.state_dict(), None, STATE)
    out = tmp_path / "m.safetensors"
    result = export(path, ckpt, out, "--format", "safetensors")
    assert result.exit_code == 0, result.output
    weights = load_file(str(out))
    assert set(weights) == {v.name for v in model.variables}  # the weights alone
    desc = json.loads((tmp_path / "m.json").read_text())
    assert desc["format"] == "trainctl-model" and desc["weights"] == "m.safetensors"
    assert desc["metadata"]["trainctl.output"] == "logits"
    rebuilt = load_portable(tmp_path / "m.json")
    assert_identical(model, rebuilt)


@pytest.mark.parametrize("name", ["merges_and_shared", "lstm_gru", "embedding_positions_attention",
                                  "batch_norm_axes"])
def test_graphs_with_shared_weights_and_sequences_round_trip(name, tmp_path):
    from trainctl.export.portable import export_portable

    model = graph_model(CASES[name])
    rebuilt = load_portable(export_portable(model, tmp_path / "g.safetensors"))
    assert_identical(model, rebuilt)
    for v, w in zip(model.variables, rebuilt.variables):
        assert v.name == w.name and v.trainable == w.trainable and torch.equal(v.data, w.data)


def test_the_description_lists_nodes_types_options_shapes_and_dtypes(tmp_path):
    from trainctl.export.portable import export_portable

    model = graph_model(CASES["merges_and_shared"])
    desc = json.loads(export_portable(model, tmp_path / "g.safetensors").read_text())
    assert desc["inputs"] == [{"name": "a", "shape": [4], "dtype": "float32"},
                              {"name": "b", "shape": [4], "dtype": "float32"}]
    assert desc["outputs"] == [{"name": "cat", "shape": [12], "dtype": "float32"}]
    da, db = desc["nodes"][0], desc["nodes"][1]
    assert da["type"] == "dense" and da["options"]["units"] == 4 and da["inputs"] == ["a"]
    assert da["weights"]["kernel"] == {"tensor": "da/kernel", "shape": [4, 4],
                                       "dtype": "float32", "trainable": True}
    assert db["shared_with"] == "da" and "weights" not in db and db["output_shape"] == [4]


def test_an_edited_description_is_a_located_error(tmp_path):
    from trainctl.export.portable import export_portable

    path = export_portable(graph_model(CASES["merges_and_shared"]), tmp_path / "g.safetensors")
    desc = json.loads(path.read_text())
    desc["nodes"][0]["options"]["unitz"] = 3
    path.write_text(json.dumps(desc))
    with pytest.raises(SpecErrors, match="unitz"):
        load_portable(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    spec = root / "s.yaml"
    spec.write_text(TRAINED)
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    return root, spec


def test_a_trained_run_exports_to_onnx_with_its_probabilities(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from trainctl.io import load_checkpoint

    root, spec = trained
    out = tmp_path / "iris.onnx"
    result = export(spec, root / "run", out)
    assert result.exit_code == 0, result.output
    model = build_model(load_spec(spec))
    model.load_state_dict(load_checkpoint(root / "run")[0])
    feeds = feeds_for(model, 6)
    (probs,) = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"]).run(
        None, feeds)
    np.testing.assert_allclose(probs, ours(model, feeds), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_a_spec_with_another_model_is_refused(trained, tmp_path):
    root, spec = trained
    other = tmp_path / "other.yaml"
    other.write_text(TRAINED.replace("activation: tanh", "activation: relu"))
    out = tmp_path / "x.onnx"
    result = export(other, root / "run", out)
    assert result.exit_code == 2
    assert "model.layers" in result.output and "does not describe the model" in result.output
    assert not out.exists()


def test_a_missing_output_directory_is_one_line_and_writes_nothing(trained, tmp_path):
    root, spec = trained
    out = tmp_path / "nope" / "m.safetensors"
    result = export(spec, root / "run", out, "--format", "safetensors")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert list(tmp_path.rglob("*")) == []


def test_a_trained_run_with_its_standardization_takes_raw_rows(trained, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from sklearn.datasets import load_iris

    from trainctl.train.trained import load_trained

    root, spec = trained
    out = tmp_path / "raw.onnx"
    assert export(spec, root / "run", out, "--with-preprocessing").exit_code == 0
    raw = load_iris().data[::15].astype(np.float32)  # centimetres, as the source gives them
    (probs,) = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"]).run(
        None, {"input": raw})
    t = load_trained(spec, root / "run")
    assert t.preprocessing.describe() == "standardize"
    np.testing.assert_allclose(probs, t.predict(raw).numpy(), rtol=1e-5, atol=1e-5)


def test_a_json_weights_path_is_refused(trained, tmp_path):
    root, spec = trained
    result = export(spec, root / "run", tmp_path / "m.json", "--format", "safetensors")
    assert result.exit_code == 2 and "unknown extension '.json'" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_format_follows_the_extension_and_a_contradiction_is_refused(trained, tmp_path):
    from trainctl.io import load_checkpoint

    root, spec = trained
    result = export(spec, root / "run", tmp_path / "m.safetensors")  # no --format
    assert result.exit_code == 0, result.output
    weights, stored = load_file(str(tmp_path / "m.safetensors")), load_checkpoint(root / "run")[0]
    assert set(weights) == set(stored)
    for name, value in stored.items():
        np.testing.assert_array_equal(weights[name], np.asarray(value))
    assert (tmp_path / "m.json").exists()
    for args, message in [(("-o", "iris.xyz"), "-o {tmp}/iris.xyz: unknown extension '.xyz'"),
                          (("-o", "x.onnx", "--format", "safetensors"), "the extension says onnx"),
                          (("-o", "y.safetensors", "--format", "onnx"), "the extension says safetensors")]:
        out = tmp_path / "bad"
        out.mkdir(exist_ok=True)
        result = CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(root / "run"),
                                          args[0], str(out / args[1]), *args[2:]])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
        assert message.format(tmp=out) in result.output, result.output
        assert list(out.iterdir()) == []
