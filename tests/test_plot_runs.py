"""``trainctl plot`` (the figure's lines hold metrics.jsonl's values; the PNG has the size
asked for) and ``trainctl runs list`` / ``runs compare`` (best values by each metric's
direction, final values side by side, the spec difference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.io.plot import default_size, plot_records
from trainctl.io.runs import read_records

SPEC = """\
name: pl
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
metrics: [accuracy, {type: auc, name: roc}]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 3, log_every_n_steps: 2}
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    (root / "s.yaml").write_text(SPEC)
    for name, extra in (("a", []), ("b", ["--set", "optimizer.learning_rate=0.05", "--epochs", "2",
                                          "--set", "model.layers[0].units=4"])):
        result = invoke("train", root / "s.yaml", "--run-dir", root / "runs" / name, "-q", *extra)
        assert result.exit_code == 0, result.output
    return root / "runs"


def jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---- plot ----------------------------------------------------------------------------------

def test_figure_lines_hold_the_records(runs):
    records = jsonl(runs / "a")
    fig = plot_records(read_records(runs / "a"))
    axes = {ax.get_title(): ax for ax in fig.axes}
    assert list(axes) == ["loss", "accuracy", "roc"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    steps = [r for r in records if r["kind"] == "step"]
    for name, ax in axes.items():
        lines = {line.get_label(): line for line in ax.lines}
        assert set(lines) == {"train", "validation", "train (steps)"}
        for label, rows, key in (("train", epochs, name), ("validation", epochs, f"val_{name}"),
                                 ("train (steps)", steps, name)):
            assert list(lines[label].get_xdata()) == [r["step"] for r in rows]
            assert list(lines[label].get_ydata()) == [r[key] for r in rows]


def test_plot_writes_a_png_of_the_size_asked_for(runs, tmp_path):
    png = tmp_path / "curves.png"
    result = invoke("plot", runs / "a", "-o", png)
    assert result.exit_code == 0, result.output
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == default_size(3) == (1200, 300)
    result = invoke("plot", runs / "a", "-o", png, "--width", 640, "--height", 480)
    with Image.open(png) as image:
        assert image.size == (640, 480)


@pytest.mark.parametrize("args, message", [
    (["plot", "{tmp}", "-o", "{tmp}/x.png"], "is not a run directory"),
    (["plot", "{run}", "-o", "{tmp}/x.jpg"], "the file must end in .png, .svg or .pdf"),
    (["runs", "list", "{tmp}/nothing"], "is not a folder"),
    (["runs", "compare", "{run}", "{tmp}"], "is not a run directory"),
])
def test_bad_arguments_are_one_line_errors(runs, tmp_path, args, message):
    result = invoke(*[a.format(tmp=tmp_path, run=runs / "a") for a in args])
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "x.png").exists()


# ---- runs list / compare -------------------------------------------------------------------

def test_runs_list_json_best_values_by_direction(runs):
    result = invoke("runs", "list", runs, "--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["runs"]
    assert [Path(r["path"]).name for r in listed] == ["a", "b"]
    for row in listed:
        epochs = [r for r in jsonl(Path(row["path"])) if r["kind"] == "epoch"]
        assert row["status"] == "completed" and row["epochs"] == len(epochs)
        assert row["steps"] == epochs[-1]["step"] == 6 * len(epochs)
        low = min(epochs, key=lambda r: r["val_loss"])
        high = max(epochs, key=lambda r: r["val_roc"])
        assert row["best"]["val_loss"] == {"value": low["val_loss"], "epoch": low["epoch"]}
        assert row["best"]["val_roc"] == {"value": high["val_roc"], "epoch": high["epoch"]}
        assert set(row["best"]) == {"val_loss", "val_accuracy", "val_roc"}
        assert row["final"] == epochs[-1] and row["duration_seconds"] > 0


def test_runs_list_table(runs):
    result = invoke("runs", "list", runs)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "epochs", "best", "duration"]
    assert lines[1].split()[:3] == ["a", "completed", "3"] and "val_loss" in lines[1]


def test_runs_compare(runs):
    result = invoke("runs", "compare", runs / "a", runs / "b", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    final_a = [r for r in jsonl(runs / "a") if r["kind"] == "epoch"][-1]
    final_b = [r for r in jsonl(runs / "b") if r["kind"] == "epoch"][-1]
    rows = {row["key"]: (row["a"], row["b"]) for row in data["final"]}
    for key in ("loss", "val_loss", "accuracy", "roc", "val_roc"):
        assert rows[key] == (final_a[key], final_b[key])
    assert data["spec_changes"] == [
        {"key": "model.layers[0].units", "a": 8, "b": 4},
        {"key": "optimizer.learning_rate", "a": 0.01, "b": 0.05},
        {"key": "train.epochs", "a": 3, "b": 2}]
    text = invoke("runs", "compare", runs / "a", runs / "b").stdout
    assert "optimizer.learning_rate" in text and "val_loss" in text
