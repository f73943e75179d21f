"""Spec + checkpoint → trained model and preprocessing (trainctl.train.trained): the
train-split statistics are stored in the checkpoint, and a model loaded from it gives on
raw rows what the training pipeline's model gives on its preprocessed rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from trainctl.autodiff import Tensor, no_grad
from trainctl.cli.app import app
from trainctl.errors import CheckpointError
from trainctl.spec import load_spec
from trainctl.train import prepare
from trainctl.train.trained import load_trained, resolve_checkpoint

V0 = """\
name: trained-v0
seed: 1
data:
  source: {type: wine}
  split: {validation: 0.1, test: 0.2}
  batch_size: 32
  standardize: true
model:
  input_shape: [13]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 2}
checkpoint: {monitor: val_loss}
"""

STEPS = """\
name: trained-steps
seed: 2
data:
  source: {type: diabetes}
  split: {validation: 0.1, test: 0.2}
  train:
    steps:
      - {type: normalize, per_feature: true}
      - standardize
      - {type: shuffle}
      - {type: batch, batch_size: 32}
model:
  input_shape: [10]
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 1}
loss: {type: mean_squared_error}
optimizer: {type: sgd, learning_rate: 0.01}
train: {epochs: 1}
"""

RAW_STEPS = STEPS.replace("      - {type: normalize, per_feature: true}\n      - standardize\n", "")


def _train(root, name, text):
    spec = root / f"{name}.yaml"
    spec.write_text(text)
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(root / name)])
    assert result.exit_code == 0, result.output
    return spec, root / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    return {"v0": _train(root, "v0", V0), "steps": _train(root, "steps", STEPS), "root": root}


def _raw_and_piped(spec_file, raw_text, split="test"):
    """(raw features, the pipeline's preprocessed features) of a split, same rows."""
    raw_file = spec_file.with_name("raw.yaml")
    raw_file.write_text(raw_text)
    raw = prepare(load_spec(raw_file)).splits
    piped = prepare(load_spec(spec_file)).splits
    xs = lambda ds: np.concatenate([np.asarray(b[0]) for b in ds])  # noqa: E731
    return xs(getattr(raw, split)), xs(getattr(piped, split))


def _model_outputs(trained, x):
    with no_grad():
        return trained.model(Tensor(torch.as_tensor(x)), training=False).data


def test_checkpoint_stores_the_train_split_statistics(runs):
    spec, run = runs["v0"]
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    (step,) = state["preprocessing"]
    raw_train, _ = _raw_and_piped(spec, V0.replace("standardize: true", "standardize: false"), "train")
    mean = np.asarray(step["fitted"]["mean"]["values"], np.float64)
    std = np.asarray(step["fitted"]["std"]["values"], np.float64)
    np.testing.assert_allclose(mean, raw_train.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, raw_train.astype(np.float64).std(axis=0), rtol=1e-6)
    assert state["class_names"] == list(prepare(load_spec(spec)).splits.class_names)


@pytest.mark.parametrize("which, raw_edit", [
    ("v0", (V0, "standardize: true", "standardize: false")),
    ("steps", (RAW_STEPS, "", "")),
])
def test_predictions_on_raw_rows_equal_the_model_on_pipeline_rows(runs, which, raw_edit):
    spec, run = runs[which]
    text, old, new = raw_edit
    raw, piped = _raw_and_piped(spec, text.replace(old, new) if old else text)
    assert not np.allclose(raw, piped)  # the pipeline does change the rows
    trained = load_trained(spec, run)
    assert trained.setup is None  # no training data read
    np.testing.assert_array_equal(trained.preprocessing(raw), piped)
    expected = _model_outputs(trained, piped)
    torch.testing.assert_close(trained.predict(raw), expected, rtol=0, atol=0)


def test_task_classes_and_probabilities(runs):
    trained = load_trained(*runs["v0"])
    assert trained.task == "classes" and trained.from_logits and len(trained.class_names) == 3
    out = torch.tensor([[1.0, 2.0, 0.5]])
    torch.testing.assert_close(trained.probabilities(out), torch.softmax(out.double(), -1))
    regression = load_trained(*runs["steps"])
    assert regression.task == "values" and regression.class_names is None
    assert regression.probabilities(out) is None


def test_run_directory_gives_best_then_final_or_latest(runs):
    _, run = runs["v0"]
    ckpts = run / "checkpoints"
    best = (ckpts / "best").read_text().strip()
    assert resolve_checkpoint(run) == ckpts / best
    assert resolve_checkpoint(run, latest=True) == ckpts / (ckpts / "latest").read_text().strip()
    _, no_monitor = runs["steps"]
    assert resolve_checkpoint(no_monitor) == no_monitor / "checkpoints" / "final"


def test_a_run_without_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(CheckpointError, match="has no checkpoints"):
        resolve_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "step-000000003").mkdir()
    with pytest.raises(CheckpointError, match="neither a best checkpoint.*--latest"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no latest checkpoint"):
        resolve_checkpoint(tmp_path, latest=True)
    with pytest.raises(CheckpointError, match="--latest needs a run directory"):
        resolve_checkpoint(tmp_path / "checkpoints", latest=True)


def test_a_spec_with_another_model_is_refused(runs, tmp_path):
    spec, run = runs["v0"]
    other = tmp_path / "other.yaml"
    other.write_text(V0.replace("units: 8", "units: 9"))
    with pytest.raises(CheckpointError, match="does not describe the model"):
        load_trained(other, run)


def test_preprocessing_round_trips_through_json_bit_for_bit():
    from trainctl.data.preprocess import Preprocessing
    from trainctl.data.transforms import Normalize, Standardize, Tokenize

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32) * [1.0, 1e-3, 1e3]
    steps = [Normalize(per_feature=True), Standardize()]
    for s in steps:
        s.fit(x, None)
    prep = Preprocessing(steps)
    back = Preprocessing.from_json(json.loads(json.dumps(prep.to_json())))
    np.testing.assert_array_equal(back(x), prep(x))
    np.testing.assert_array_equal(back(x), steps[1].apply(steps[0].apply(x, None), None))
    tok = Tokenize(length=4)
    tok.fit(np.array(["a b b", "c b"]), None)
    back = Preprocessing.from_json(json.loads(json.dumps(Preprocessing([tok]).to_json())))
    np.testing.assert_array_equal(back(np.array(["b a zz", "c"])), [[2, 3, 1, 0], [4, 0, 0, 0]])


@pytest.mark.parametrize("entries", ["x", [{"type": "standardise", "config": {}, "fitted": {}}],
                                     [{"type": "standardize", "config": {}, "fitted": {}}]])
def test_unreadable_stored_preprocessing_is_a_checkpoint_error(entries):
    from trainctl.data.preprocess import Preprocessing

    with pytest.raises(CheckpointError, match="state.json"):
        Preprocessing.from_json(entries)


def test_a_checkpoint_written_before_preprocessing_was_stored_gets_it_from_the_data(runs, tmp_path):
    import hashlib
    import shutil

    spec, run = runs["v0"]
    old = tmp_path / "old"
    shutil.copytree(run / "checkpoints" / "final", old)
    state = json.loads((old / "state.json").read_text())
    stored = state.pop("preprocessing"), state.pop("class_names")
    (old / "state.json").write_text(json.dumps(state))
    lines = [f"{hashlib.sha256((old / n).read_bytes()).hexdigest()}  {n}"
             for n in ("state.json", "weights.safetensors", "optimizer.safetensors") if (old / n).exists()]
    (old / "MANIFEST").write_text("\n".join(lines) + "\n")
    trained = load_trained(spec, old)
    assert trained.preprocessing.to_json() == stored[0]
    assert list(trained.class_names) == stored[1]


def test_a_refused_spec_names_the_real_change_first():
    """A csv-trained checkpoint evaluated with an iris spec: the source type is listed
    first; the csv-only fields (absent from the iris source) and null-vs-absent fields are
    left out; two-sided value changes come before one-sided ones."""
    from trainctl.train.trained import check_same_model

    trained = {"model": {"layers": [{"type": "dense", "units": 8}]},
               "data": {"batch_size": 32, "source": {
                   "type": "csv", "classes": None, "columns": None, "delimiter": ",",
                   "label": "species", "path": "/x/iris.csv", "task": "auto"},
                   "steps": [{"type": "filter", "keep": 1}]}}
    now = {"model": {"layers": [{"type": "dense", "units": 9}]},
           "data": {"batch_size": 16, "source": {"type": "iris", "extra": None}}}
    with pytest.raises(CheckpointError) as exc:
        check_same_model(trained, now, "s.yaml")
    listed = str(exc.value).split("trained with: ")[1].split("; use the run's")[0]
    assert listed == ("data.source.type: 'csv' -> 'iris'; "
                      "model.layers[0].units: 8 -> 9; "
                      "data.steps[0].type: 'filter' -> '(absent)'")
