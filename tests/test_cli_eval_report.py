"""``trainctl eval``: per-class precision/recall/F1 and the confusion matrix against
scikit-learn on the same predictions, any split or a data file (--data), --plot,
--json, and which checkpoint of a run directory is read (best, --latest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

from trainctl.spec import load_spec
from trainctl.train import prepare
from use_helpers import IRIS_CSV, invoke, make_runs, oracle


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("evalreport"))


def eval_json(spec, run, *extra):
    result = invoke("eval", spec, "--checkpoint", run, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def split_rows(spec, split):
    """Raw test rows are not kept by the pipeline: the preprocessed rows and labels."""
    ds = getattr(prepare(load_spec(spec)).splits, split)
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def assert_report_matches_sklearn(payload, y_true, y_pred, names):
    report = payload["report"]
    expected = classification_report(y_true, y_pred, labels=range(len(names)), target_names=names,
                                     output_dict=True, zero_division=0)
    assert report["classes"] == names
    for row in report["per_class"]:
        for key, theirs in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"),
                            ("support", "support")):
            assert row[key] == pytest.approx(expected[row["class"]][theirs], abs=1e-12)
    for ours, theirs in (("macro_avg", "macro avg"), ("weighted_avg", "weighted avg")):
        assert report[ours]["f1"] == pytest.approx(expected[theirs]["f1-score"], abs=1e-12)
        assert report[ours]["precision"] == pytest.approx(expected[theirs]["precision"], abs=1e-12)
    assert report["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=range(len(names))).tolist()
    assert payload["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-6)


@pytest.mark.parametrize("split", ["test", "validation", "train"])
def test_report_of_each_split_matches_sklearn(runs, split):
    spec, run = runs["iris"]
    payload = eval_json(spec, run, "--split", split)
    x, y = split_rows(spec, split)
    ckpt = run / "checkpoints" / (run / "checkpoints" / "best").read_text().strip()
    assert payload["checkpoint"] == str(ckpt) and payload["split"] == split
    assert payload["samples"] == len(y)
    from safetensors.torch import load_file  # the model on the pipeline's rows, plain torch
    w = load_file(str(ckpt / "weights.safetensors"))
    h = torch.relu(torch.as_tensor(x, dtype=torch.float64) @ w["dense/kernel"].double() + w["dense/bias"].double())
    pred = (h @ w["dense_1/kernel"].double() + w["dense_1/bias"].double()).argmax(1).numpy()
    assert_report_matches_sklearn(payload, y, pred, ["setosa", "versicolor", "virginica"])


def test_data_file_given_on_the_command_line(runs):
    spec, run = runs["iris"]
    payload = eval_json(spec, run, "--data", IRIS_CSV)
    assert payload["data"] == str(IRIS_CSV) and payload["samples"] == 150 and "split" not in payload
    from use_helpers import iris_rows
    x, species = iris_rows()
    names = ["setosa", "versicolor", "virginica"]
    y = np.array([names.index(s) for s in species])
    ckpt = run / "checkpoints" / (run / "checkpoints" / "best").read_text().strip()
    pred = oracle(ckpt, x).argmax(1).numpy()
    assert_report_matches_sklearn(payload, y, pred, names)


def test_image_folder_data_and_plot(runs, tmp_path):
    spec, run = runs["images"]
    png = tmp_path / "confusion.png"
    payload = eval_json(spec, run, "--data", runs["root"] / "images", "--plot", png)
    assert payload["samples"] == 24 and payload["report"]["classes"] == ["dark", "light"]
    files = sorted((runs["root"] / "images").rglob("*.png"))
    pixels = np.stack([np.asarray(Image.open(p), np.float32) for p in files])
    y = np.array([0 if p.parent.name == "dark" else 1 for p in files])
    pred = oracle(run / "checkpoints" / "final", pixels).argmax(1).numpy()
    assert_report_matches_sklearn(payload, y, pred, ["dark", "light"])
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 100
    assert not list(tmp_path.glob(".*"))


def test_tables_on_stdout(runs):
    spec, run = runs["iris"]
    result = invoke("eval", spec, "--checkpoint", run)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith("test (30 samples): loss ")
    for word in ("per class", "precision", "macro avg", "weighted avg", "confusion matrix",
                 "setosa", "virginica"):
        assert word in text


def test_regression_has_no_class_report_and_no_plot(runs, tmp_path):
    spec, run = runs["diabetes"]
    payload = eval_json(spec, run)
    assert "report" not in payload and payload["mean_absolute_error"] > 0
    result = invoke("eval", spec, "--checkpoint", run, "--plot", tmp_path / "c.png")
    assert result.exit_code == 2 and "regression" in result.output
    assert not (tmp_path / "c.png").exists()


def test_latest_and_best_checkpoints_of_a_run(runs):
    spec, run = runs["iris"]
    ckpts = run / "checkpoints"
    latest = eval_json(spec, run, "--latest")
    assert latest["checkpoint"] == str(ckpts / (ckpts / "latest").read_text().strip())
    best = eval_json(spec, run)
    assert best["checkpoint"] == str(ckpts / (ckpts / "best").read_text().strip())


@pytest.mark.parametrize("make, message", [
    (lambda p: (p / "checkpoints").mkdir(parents=True), "has no checkpoints"),
    (lambda p: (p / "checkpoints" / "step-000000002").mkdir(parents=True), "neither a best checkpoint"),
])
def test_a_run_without_the_checkpoint_is_a_clear_error(runs, tmp_path, make, message):
    spec, _ = runs["iris"]
    make(tmp_path / "run")
    result = invoke("eval", spec, "--checkpoint", tmp_path / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.output


def test_bad_plot_suffix_is_refused_before_any_work(runs, tmp_path):
    spec, run = runs["iris"]
    result = invoke("eval", spec, "--checkpoint", run, "--plot", tmp_path / "c.jpg")
    assert result.exit_code == 2 and "must end in .png, .svg, .pdf" in result.output


def test_npz_data_gives_the_csv_report(runs, tmp_path):
    from use_helpers import iris_rows

    spec, run = runs["iris"]
    x, species = iris_rows()
    names = ["setosa", "versicolor", "virginica"]
    np.savez(tmp_path / "iris.npz", x=x, y=np.array([names.index(s) for s in species]))
    from_npz = eval_json(spec, run, "--data", tmp_path / "iris.npz")
    from_csv = eval_json(spec, run, "--data", IRIS_CSV)
    assert from_npz["report"] == from_csv["report"] and from_npz["loss"] == pytest.approx(from_csv["loss"])
