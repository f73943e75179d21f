"""Metrics in a spec: the option form, option errors, and the checks of each metric (and
of a loss comparing values) against the model's output and the data, located in the file
and reported by ``trainctl validate`` and ``trainctl train`` before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.cli.validate import check_spec_file
from trainctl.nn.metrics import metrics
from trainctl.spec.kinds.metrics import Target, metric_kinds

IRIS = """\
name: m
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 1}
"""
BLOBS = IRIS.replace("{type: iris}", "{type: blobs, n_samples: 80}").replace(
    "input_shape: [4]", "input_shape: [2]").replace("units: 3}", "units: 1}").replace(
    "sparse_categorical_crossentropy", "binary_crossentropy")
DIABETES = IRIS.replace("{type: iris}", "{type: diabetes}").replace(
    "input_shape: [4]", "input_shape: [10]").replace("units: 3}", "units: 1}").replace(
    "{type: sparse_categorical_crossentropy, from_logits: true}", "mean_squared_error")

METRICS_LINE = 12  # the line of "metrics:" in the specs above


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def errors(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    return [str(e).replace(str(path), "S") for e in check_spec_file(path, [])]


@pytest.mark.parametrize("base, metrics_list, message", [
    (IRIS, "[accuracy, mean_squared_error]",
     "S:12:21: metrics[1]: mean_squared_error compares the output with the labels, but source "
     "'iris' gives one class label per sample (3 classes) and the model outputs [3] (use "
     "accuracy, or a regression source)"),
    (IRIS, "[binary_accuracy]",
     "S:12:11: metrics[0]: binary_accuracy needs 2 classes, source 'iris' has 3 (use accuracy or "
     "sparse_categorical_accuracy)"),
    (BLOBS, "[sparse_categorical_accuracy]",
     "S:12:11: metrics[0]: sparse_categorical_accuracy takes the arg-max over an output of "
     "[classes]; the model outputs [1] (one unit: use binary_accuracy or accuracy)"),
    (DIABETES, "[mean_absolute_error, accuracy]",
     "S:12:32: metrics[1]: accuracy needs class labels, but source 'diabetes' gives regression "
     "targets (use mean_absolute_error, mean_squared_error, root_mean_squared_error or r2)"),
    (DIABETES, "[{type: f1, average: macro}]",
     "S:12:11: metrics[0]: f1 needs class labels, but source 'diabetes' gives regression "
     "targets (use mean_absolute_error, mean_squared_error, root_mean_squared_error or r2)"),
    (IRIS, "[{type: top_k_accuracy, k: 3}]",
     "S:12:11: metrics[0]: top_k_accuracy with k 3 of 3 classes counts every label as right; "
     "set k below 3"),
    (IRIS, "[{type: precision, average: binary}]",
     "S:12:11: metrics[0]: precision with average binary needs 2 classes, source 'iris' has 3 "
     "(use macro, micro, weighted or per_class)"),
])
def test_a_metric_that_cannot_measure_the_model_is_a_located_error(tmp_path, base,
                                                                    metrics_list, message):
    assert errors(tmp_path, base.replace("[accuracy]", metrics_list)) == [message]


def test_mean_squared_error_loss_on_class_labels_needs_one_output_unit(tmp_path):
    text = IRIS.replace("{type: sparse_categorical_crossentropy, from_logits: true}",
                        "mean_squared_error").replace("[accuracy]", "[]")
    assert errors(tmp_path, text) == [
        "S:10:7: model.layers[1]: mean_squared_error compares the output with the labels: "
        "source 'iris' gives labels of shape [] per sample, so the model must output [1], "
        "not [3]"]
    assert errors(tmp_path, text.replace("units: 3}", "units: 1}")) == []


@pytest.mark.parametrize("metrics_list, message", [
    ("[{type: top_k_accuracy, k: 0}]", "S:12:37: metrics[0].k: must be > 0, got 0"),
    ("[{type: f1, averge: macro}]", "S:12:22: metrics[0].averge: unknown field; did you mean "
                                    "'average'?"),
    ("[{type: f1, average: mean}]", "S:12:31: metrics[0].average: expected one of 'binary', "
                                    "'macro', 'micro', 'weighted', 'per_class', got 'mean'"),
    ("[f1, {type: f1, average: micro}]", "S:12:15: metrics[1]: metric name 'f1' is already used "
                                         "by metrics[0]; give this one another 'name'"),
    ("[{type: f1, name: val_f1}]", "S:12:28: metrics[0].name: 'val_f1' is a key the records use "
                                   "already; choose another name"),
    ("[{type: auc_roc}]", "S:12:18: metrics[0].type: unknown metric 'auc_roc'; did you mean "
                          "'auc'?"),
    ("[3]", "S:12:11: metrics[0]: expected a name or a mapping with a 'type', got 3"),
])
def test_metric_options_are_validated_through_their_kinds(tmp_path, metrics_list, message):
    assert errors(tmp_path, IRIS.replace("[accuracy]", metrics_list)) == [message]


def test_train_reports_the_checks_before_writing_anything(tmp_path):
    spec = write(tmp_path, IRIS.replace("[accuracy]", "[accuracy, mean_squared_error]"))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(run)])
    assert result.exit_code == 2, result.output
    assert "metrics[1]: mean_squared_error compares the output with the labels" in result.stderr
    assert "Traceback" not in result.output and not run.exists()


def test_options_reach_the_records_and_per_class_keys_are_flat(tmp_path):
    text = IRIS.replace("[accuracy]", "[accuracy, {type: top_k_accuracy, k: 2}, "
                                      "{type: f1, average: per_class}, {type: auc, name: roc}]")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(write(tmp_path, text)), "--run-dir", str(run),
                                      "--set", "checkpoint.monitor=val_f1_class_2"])
    assert result.exit_code == 0, result.output
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("accuracy", "top_k_accuracy", "f1_class_0", "f1_class_1", "f1_class_2", "roc"):
        assert 0.0 <= record[key] <= 1.0 and 0.0 <= record[f"val_{key}"] <= 1.0, key
    assert "f1" not in record
    saved = (run / "spec.yaml").read_text()
    assert "average: per_class" in saved and "k: 2" in saved  # defaults filled in: name: null


def test_kinds_and_computations_are_one_registered_pair():
    assert metrics.names() == metric_kinds.names()
    for name, cls in metrics.items():
        kind = metric_kinds.get(name)
        assert issubclass(cls, kind) and cls.Config is kind.Config, name


def test_directions_and_rules_without_torch():
    iris = Target((3,), 3, (), "sparse_categorical_crossentropy", "iris")
    assert metric_kinds.get("r2").problem(metric_kinds.get("r2").Config(), iris) is not None
    assert metric_kinds.get("accuracy").problem(metric_kinds.get("accuracy").Config(), iris) is None
    binary_onehot = Target((2,), 2, (2,), "categorical_crossentropy", "x")  # one-hot labels
    assert metric_kinds.get("categorical_accuracy").problem(
        metric_kinds.get("categorical_accuracy").Config(), binary_onehot) is None
    assert [metric_kinds.get(n).direction for n in ("auc", "perplexity", "r2", "mean_squared_error")] \
        == ["max", "min", "max", "min"]
