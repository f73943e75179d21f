"""``trainctl train`` and ``trainctl eval`` end to end, on tiny specs (a few seconds).

Each run is made once per module and shared; eval results are checked against a plain
torch recomputation from the saved safetensors weights and a freshly built split.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.data import build_splits, load_source
from trainctl.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent

IRIS = """\
name: tiny-iris
seed: 0
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 3}
"""

BLOBS = """\
name: tiny-blobs
seed: 3
data:
  source: {type: blobs, n_samples: 200, sigma: 0.8}
  split: {validation: 0.1, test: 0.2}
  batch_size: 32
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 4, activation: relu}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: sgd, learning_rate: 0.1}
train: {epochs: 2}
"""

RECORD_KEYS = ["kind", "epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy",
               "learning_rate", "seconds", "input_wait"]


def invoke(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def train(spec: Path, run: Path, *extra: str) -> Path:
    result = invoke("train", spec, "--run-dir", run, *extra)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"run written to {run}" in result.stdout
    return run


def metrics_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    (root / "iris.yaml").write_text(IRIS)
    (root / "blobs.yaml").write_text(BLOBS)
    return root


@pytest.fixture(scope="module")
def iris_run(work) -> Path:
    return train(work / "iris.yaml", work / "iris-run")


@pytest.fixture(scope="module")
def blobs_run(work) -> Path:
    return train(work / "blobs.yaml", work / "blobs-run")


@pytest.fixture(scope="module")
def override_run(work) -> Path:
    return train(work / "iris.yaml", work / "override-run", "--epochs", "2", "--seed", "7")


# ---- the run directory -------------------------------------------------------------


def test_run_dir_layout(iris_run):
    assert sorted(p.name for p in iris_run.iterdir()) == ["checkpoints", "metrics.csv",
                                                           "metrics.jsonl", "run.json",
                                                           "spec.yaml", "tensorboard"]
    final = iris_run / "checkpoints" / "final"
    assert sorted(p.name for p in final.iterdir()) == ["MANIFEST", "optimizer.safetensors",
                                                        "state.json", "weights.safetensors"]
    files = [p for p in iris_run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".pt", ".pth", ".bin")]
    state = json.loads((final / "state.json").read_text())
    assert state["epoch"] == 3 and state["seed"] == 0 and state["spec_name"] == "tiny-iris"
    assert state["step"] == metrics_of(iris_run)[-1]["step"]


def test_resolved_spec_round_trips(work, iris_run):
    saved = load_spec(iris_run / "spec.yaml")
    given = load_spec(work / "iris.yaml")
    assert saved.data.split.validation == 0.2 and saved.train.eval_batch_size == 256  # a default
    # every section is resolved: registered things carry all their defaults and their names
    assert saved.optimizer == {"type": "adam", "learning_rate": 0.01, "beta_1": 0.9,
                               "beta_2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0,
                               "amsgrad": False, "clipnorm": None, "global_clipnorm": None,
                               "clipvalue": None, "weight_decay_exclude": [], "groups": [],
                               "gradient_accumulation_steps": 1, "use_ema": False,
                               "ema_momentum": 0.99}
    assert [layer["name"] for layer in saved.model.layers] == ["dense", "dense_1"]
    assert saved.model.layers[0] == {"type": "dense", "name": "dense", "units": 8,
                                     "activation": "relu", "use_bias": True,
                                     "kernel_initializer": "glorot_uniform",
                                     "bias_initializer": "zeros", "kernel_regularizer": None,
                                     "bias_regularizer": None}
    assert saved.loss == {"type": "sparse_categorical_crossentropy", "from_logits": True}
    # what is not a registered section is the spec as given, defaults filled in
    for key in ("name", "seed", "device", "metrics", "train"):
        assert getattr(saved, key) == getattr(given, key)
    assert saved.data.model_dump(exclude={"source"}) == given.data.model_dump(exclude={"source"})
    # and the resolved spec trains to the same run: it resolves to itself
    assert load_spec(iris_run / "spec.yaml").to_yaml() == (iris_run / "spec.yaml").read_text()


def test_metrics_jsonl_has_one_record_per_epoch(iris_run):
    records = metrics_of(iris_run)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    steps_per_epoch = math.ceil(90 / 16)  # 150 iris samples, 20% validation, 20% test
    for record in records:
        assert list(record) == RECORD_KEYS
        assert record["step"] == record["epoch"] * steps_per_epoch
        assert record["kind"] == "epoch"
        for key in RECORD_KEYS[3:]:
            assert isinstance(record[key], float) and math.isfinite(record[key]), key
        assert 0 <= record["accuracy"] <= 1 and 0 <= record["val_accuracy"] <= 1
        assert record["loss"] > 0 and record["val_loss"] > 0
        assert record["learning_rate"] == 0.01
        assert 0 <= record["input_wait"] <= 1
    assert records[-1]["loss"] < records[0]["loss"]


def test_overrides_take_effect(work, override_run):
    assert len(metrics_of(override_run)) == 2
    saved = load_spec(override_run / "spec.yaml")
    assert saved.seed == 7 and saved.train.epochs == 2
    expected = load_spec(work / "iris.yaml").with_overrides(seed=7, epochs=2)
    assert saved.model_dump(exclude={"model", "optimizer", "data"}) == \
        expected.model_dump(exclude={"model", "optimizer", "data"})
    state = json.loads((override_run / "checkpoints" / "final" / "state.json").read_text())
    assert state["seed"] == 7 and state["epoch"] == 2


def without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("seconds", "input_wait")} for r in records]


def test_same_seed_same_metrics(work, iris_run):
    again = train(work / "iris.yaml", work / "iris-again")
    assert without_seconds(metrics_of(again)) == without_seconds(metrics_of(iris_run))
    weights = [load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))
               for run in (again, iris_run)]
    assert all(weights[0][name].equal(weights[1][name]) for name in weights[1])


def test_another_seed_other_metrics(iris_run, override_run):
    assert metrics_of(override_run)[0]["loss"] != metrics_of(iris_run)[0]["loss"]


def test_default_run_dir(work, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = invoke("train", work / "blobs.yaml", "--epochs", "1")
    assert result.exit_code == 0, result.output
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    assert re.fullmatch(r"tiny-blobs-\d{8}-\d{6}", runs[0].name), runs[0].name
    assert f"run written to {Path('runs') / runs[0].name}" in result.stdout
    assert (runs[0] / "checkpoints" / "final" / "weights.safetensors").is_file()
    assert len(metrics_of(runs[0])) == 1


# ---- eval -------------------------------------------------------------------------


def recompute(spec_file: Path, run: Path, split: str) -> dict:
    """Loss and accuracy of the saved weights on ``split``, in plain torch."""
    spec = load_spec(run / "spec.yaml")  # the resolved spec: seed and all
    assert spec.to_dict()["data"] == load_spec(spec_file).to_dict()["data"]
    d = spec.data
    splits = build_splits(load_source(d.source, spec.seed), validation=d.split.validation,
                          test=d.split.test, seed=spec.seed, batch_size=d.batch_size,
                          shuffle=d.shuffle, standardize=d.standardize)
    batches = list(getattr(splits, split))
    x = torch.from_numpy(np.concatenate([b[0] for b in batches]))
    y = torch.from_numpy(np.concatenate([b[1] for b in batches]))
    w = load_file(str(run / "checkpoints" / "final" / "weights.safetensors"))
    assert sorted(w) == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    hidden = torch.relu(x @ w["dense/kernel"] + w["dense/bias"])
    logits = hidden @ w["dense_1/kernel"] + w["dense_1/bias"]
    if logits.shape[-1] == 1:
        z = logits[:, 0].double()
        loss = F.binary_cross_entropy_with_logits(z, y.double())
        accuracy = ((z > 0).long() == y).double().mean()
    else:
        loss = F.cross_entropy(logits.double(), y)
        accuracy = (logits.argmax(-1) == y).double().mean()
    return {"loss": loss.item(), "accuracy": accuracy.item(), "samples": len(y)}


def eval_json(spec: Path, run: Path, *extra: str) -> dict:
    result = invoke("eval", spec, "--checkpoint", run, "--json", *extra)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    payload = json.loads(lines[0])
    assert isinstance(payload, dict)
    return payload


@pytest.mark.parametrize("which", ["iris", "blobs", "override"])
def test_eval_json_matches_a_plain_torch_recomputation(request, work, which):
    run = request.getfixturevalue(f"{which}_run")
    spec = work / ("blobs.yaml" if which == "blobs" else "iris.yaml")
    # the override run was trained with --seed 7: eval takes the seed from the checkpoint
    payload = eval_json(spec, run)
    expected = recompute(spec, run, "test")
    assert payload["split"] == "test" and payload["samples"] == expected["samples"]
    assert payload["loss"] == pytest.approx(expected["loss"], abs=1e-6)
    assert payload["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-6)


def test_eval_checkpoint_dir_or_run_dir(work, iris_run):
    a = eval_json(work / "iris.yaml", iris_run)
    b = eval_json(work / "iris.yaml", iris_run / "checkpoints" / "final")
    assert (a["loss"], a["accuracy"]) == (b["loss"], b["accuracy"])


def test_eval_validation_matches_the_last_epoch(work, iris_run):
    payload = eval_json(work / "iris.yaml", iris_run, "--split", "validation")
    last = metrics_of(iris_run)[-1]
    assert payload["split"] == "validation" and payload["samples"] == 30
    assert payload["loss"] == pytest.approx(last["val_loss"], abs=1e-6)
    assert payload["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-6)
    expected = recompute(work / "iris.yaml", iris_run, "validation")
    assert payload["loss"] == pytest.approx(expected["loss"], abs=1e-6)


def test_eval_plain_output(work, iris_run):
    result = invoke("eval", work / "iris.yaml", "--checkpoint", iris_run)
    assert result.exit_code == 0, result.output
    first, rest = result.stdout.split("\n", 1)
    assert re.fullmatch(r"test \(30 samples\): loss \d+\.\d{4}  accuracy \d\.\d{4}", first), first
    assert "per class" in rest and "confusion matrix" in rest  # then the classifier's tables


def eval_fails(*args) -> str:
    result = invoke("eval", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_eval_missing_checkpoint(work, tmp_path):
    missing = tmp_path / "no-such-run"
    line = eval_fails(work / "iris.yaml", "--checkpoint", missing)
    assert str(missing) in line and "not found" in line
    assert not missing.exists()


def test_eval_directory_without_checkpoint(work, tmp_path):
    line = eval_fails(work / "iris.yaml", "--checkpoint", tmp_path)
    assert str(tmp_path) in line and "not a checkpoint" in line


def test_eval_checkpoint_of_another_model(work, blobs_run):
    line = eval_fails(work / "iris.yaml", "--checkpoint", blobs_run)
    # refused before any weight is loaded: the spec names another model and other data
    assert "does not describe the model and data" in line
    assert "model.input_shape: [2] -> [4]" in line


def test_eval_bad_spec(work, iris_run, tmp_path):
    spec = tmp_path / "missing.yaml"
    line = eval_fails(spec, "--checkpoint", iris_run)
    assert str(spec) in line and "not found" in line


# ---- the program ------------------------------------------------------------------


def test_python_m_trainctl_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "trainctl", "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "eval" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["train", "eval"])
def test_command_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "--device" in result.stdout


@pytest.mark.parametrize("rich", [False, True])
def test_progress_reporters(rich):
    import io

    from rich.console import Console

    from trainctl.cli.progress import PlainReporter, RichReporter

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=rich, width=120, highlight=False)
    reporter = RichReporter(console, refresh=0.0) if rich else PlainReporter(console)
    reporter.on_train_begin({"epochs": 2, "train_size": 40, "device": "cpu", "params": 11})
    for epoch in (1, 2):
        reporter.on_epoch_begin(epoch, 2)
        for step in (1, 2):
            reporter.on_batch_end(step, 20, torch.tensor(0.5))
        reporter.on_epoch_end(epoch, {"epoch": epoch, "step": 2 * epoch, "loss": 0.25,
                                      "accuracy": 0.75, "learning_rate": 0.01, "seconds": 0.5})
    reporter.on_train_end([])
    text = buffer.getvalue()
    assert "training on cpu: 11 parameters, 40 training samples, 2 epochs" in text
    for epoch in (1, 2):
        assert (f"epoch {epoch}/2  loss 0.25  accuracy 0.75  learning_rate 0.01  0.50s  "
                "80 samples/s") in text
