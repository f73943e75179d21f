"""``trainctl data inspect`` / ``trainctl data bench``, and the input wait reported in
metrics.jsonl during training."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.data import plan_data
from trainctl.data.iterator import describe
from trainctl.data.report import first_samples
from trainctl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
name: cli-data
seed: 1
data:
  source: {type: csv, path: data/iris.csv, label: species}
  split: {validation: 0.2, test: 0.2}
  train:
    steps: [standardize, {type: shuffle}, {type: batch, batch_size: 16}]
model:
  input_shape: [4]
  layers: [{type: dense, units: 3}]
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 2}
"""


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data-cli")
    (root / "data").mkdir()
    shutil.copy(ROOT / "datasets" / "iris.csv", root / "data" / "iris.csv")
    (root / "s.yaml").write_text(SPEC)
    return root / "s.yaml"


def test_inspect_json_counts_and_class_balance(spec):
    result = invoke("data", "inspect", spec, "--json", "--examples", 2)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["class_names"] == ["setosa", "versicolor", "virginica"]
    # 150 irises, 50 per class, split 20% / 20% stratified: 90 / 30 / 30
    assert {k: (v["samples"], v["classes"]) for k, v in info["splits"].items()} == {
        "train": (90, [30, 30, 30]), "validation": (30, [10, 10, 10]), "test": (30, [10, 10, 10])}
    assert info["splits"]["train"]["batches"] == 6            # ceil(90 / 16)
    assert info["splits"]["train"]["element_spec"] == "(float32 [None, 4], int64 [None])"
    assert len(info["examples"]) == 2 and info["examples"][0]["shape"] == [4]
    text = invoke("data", "inspect", spec).stdout
    assert "class balance  setosa  versicolor  virginica" in text
    assert "train            90        6  (float32 [None, 4], int64 [None])" in text


def test_inspect_writes_an_image_grid(tmp_path):
    spec_path = ROOT / "specs" / "digits_idx.yaml"
    grid = tmp_path / "grid.png"
    result = invoke("data", "inspect", spec_path, "-o", grid, "--images", 10)
    assert result.exit_code == 0, result.output
    assert f"wrote 10 images to {grid}" in result.stdout
    with Image.open(grid) as image:
        pixels = np.asarray(image)
    # 8x8 images enlarged 4x to 32x32, 8 per row, 1 pixel apart: 2 rows
    assert pixels.shape == (2 * 33 - 1, 8 * 33 - 1)
    s = load_spec(spec_path)
    first = first_samples(plan_data(s.data, s.doc).load(s.seed).train, 1)[0][0]
    # normalize maps counts 0..16 to 0..1; the grid spreads the images' range to 0..255
    expected = np.kron(np.round(first * 255), np.ones((4, 4)))
    np.testing.assert_allclose(pixels[:32, :32], expected, atol=1)


def test_inspect_grid_of_non_images_is_a_user_error(spec, tmp_path):
    result = invoke("data", "inspect", spec, "-o", tmp_path / "g.png")
    assert result.exit_code == 2
    assert "features of shape [4] are not images" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "g.png").exists()


def test_bench_times_every_stage(spec):
    result = invoke("data", "bench", spec, "--json", "--seconds", 5)
    assert result.exit_code == 0, result.output
    stages = json.loads(result.stdout)["stages"]
    s = load_spec(spec)
    pipeline = plan_data(s.data, s.doc).load(s.seed).train
    assert [r["stage"] for r in stages] == describe(pipeline)
    assert [r["elements"] for r in stages] == [90, 90, 90, 6]
    assert [r["samples"] for r in stages] == [90, 90, 90, 90]
    assert all(r["elements_per_second"] > 0 for r in stages)
    text = invoke("data", "bench", spec, "--split", "test").stdout
    assert "elements/s" in text and "batch(batch_size=256" in text


def test_bench_notes_a_parallel_map_that_ran_serially(spec, tmp_path):
    parallel = spec.read_text().replace(
        "steps: [standardize, {type: shuffle},",
        "steps: [{type: shuffle, buffer_size: 8}, {type: map, transform: standardize, num_parallel_calls: 2},")
    (tmp_path / "data").mkdir()
    shutil.copy(spec.parent / "data" / "iris.csv", tmp_path / "data" / "iris.csv")
    (tmp_path / "p.yaml").write_text(parallel)
    stages = json.loads(invoke("data", "bench", tmp_path / "p.yaml", "--json").stdout)["stages"]
    assert [r["serial_reason"] is not None for r in stages] == [False, False, True, False]
    reason = "the iteration ended after 90 elements, within the first 20 ms of work timed"
    assert stages[2]["serial_reason"].startswith(reason)
    lines = invoke("data", "bench", tmp_path / "p.yaml").stdout.splitlines()
    assert lines[-1].startswith(f"note: {stages[2]['stage']} ran serially: {reason}")


def test_bad_data_section_is_located(tmp_path):
    (tmp_path / "s.yaml").write_text(SPEC.replace("data/iris.csv", "data/none.csv"))
    result = invoke("data", "inspect", tmp_path / "s.yaml")
    assert result.exit_code == 2
    assert "s.yaml:4:" in result.output and "data.source.path" in result.output


def test_metrics_report_the_share_of_time_waiting_for_input(spec, tmp_path):
    from trainctl.io import RunDir
    from trainctl.train import Trainer, prepare

    def run(folder, slow):
        setup = prepare(load_spec(spec).with_overrides(epochs=3), "cpu")
        if slow:                                   # 30 ms per batch to produce
            train = setup.splits.train.map(lambda x, y: (time.sleep(0.03), x, y)[1:])
            setup.splits = dataclasses.replace(setup.splits, train=train)
        rd = RunDir(tmp_path / folder).create(setup.resolved_yaml())
        history = Trainer(setup, rd).fit()
        lines = (tmp_path / folder / "metrics.jsonl").read_text().splitlines()
        assert "input_wait" not in history[0]      # the history keeps only the values
        return [json.loads(line)["input_wait"] for line in lines]

    slow, fast = run("slow", True), run("fast", False)
    # the first epoch also pays the first steps' one-off costs; compare the later ones
    assert all(0.5 < w <= 1 for w in slow[1:]), slow
    # the fast pipeline's share depends on how busy the machine is (the prefetch thread
    # competes for the cores); it must stay below the share of a pipeline sleeping 30 ms
    # per batch, whatever the load
    assert all(0 <= w < min(slow[1:]) for w in fast[1:]), (fast, slow)
