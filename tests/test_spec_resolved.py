"""The run directory records the resolved spec: the ``base:`` chain merged, ``--set`` and
the dedicated flags applied, defaults filled in; ``eval`` takes ``--set`` the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.spec import load_spec

BASE = """\
name: iris-base
seed: 0
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 6, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 5}
"""

CHILD = """\
base: ../common/base.yaml
name: iris-child
optimizer: {beta_1: 0.8}
"""


def invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resolved")
    (root / "common").mkdir()
    (root / "common" / "base.yaml").write_text(BASE)
    (root / "exp").mkdir()
    child = root / "exp" / "child.yaml"
    child.write_text(CHILD)
    result = invoke(["train", str(child), "--set", "optimizer.learning_rate=2e-2",
                     "--set", "model.layers[0].units=5", "--set", "data.batch_size=32",
                     "--epochs", "1", "--seed", "3", "--run-dir", str(root / "run")])
    assert result.exit_code == 0, result.output
    return child, root / "run"


def test_run_records_base_and_overrides(run):
    child, rundir = run
    saved = yaml.safe_load((rundir / "spec.yaml").read_text())
    assert "base" not in saved
    assert (saved["name"], saved["seed"], saved["train"]["epochs"]) == ("iris-child", 3, 1)
    optimizer = saved["optimizer"]  # the child's beta_1 merged over the base, defaults filled
    assert (optimizer["type"], optimizer["learning_rate"], optimizer["beta_1"],
            optimizer["beta_2"]) == ("adam", 0.02, 0.8, 0.999)
    assert [layer["units"] for layer in saved["model"]["layers"]] == [5, 3]
    assert saved["data"]["batch_size"] == 32 and saved["data"]["split"]["validation"] == 0.2


def test_recorded_spec_reloads_to_the_same_spec(run):
    child, rundir = run
    given = load_spec(child, ["optimizer.learning_rate=2e-2", "model.layers[0].units=5",
                              "data.batch_size=32", "train.epochs=1", "seed=3"])
    saved = load_spec(rundir / "spec.yaml")
    assert saved.optimizer["learning_rate"] == given.optimizer["learning_rate"] == 0.02
    for key in ("name", "seed", "data", "train", "metrics"):
        assert saved.to_dict()[key] == given.to_dict()[key], key


def test_eval_takes_set_overrides(run):
    child, rundir = run
    sets = ["--set", "optimizer.learning_rate=2e-2", "--set", "model.layers[0].units=5",
            "--set", "data.batch_size=32", "--set", "train.epochs=1"]
    by_set = invoke(["eval", str(child), "--checkpoint", str(rundir), "--json", *sets])
    assert by_set.exit_code == 0, by_set.output
    recorded = invoke(["eval", str(rundir / "spec.yaml"), "--checkpoint", str(rundir), "--json"])
    assert recorded.exit_code == 0, recorded.output
    a, b = json.loads(by_set.stdout), json.loads(recorded.stdout)
    assert a["samples"] == b["samples"] == 30  # the test fifth of the 150 irises
    assert a["loss"] == b["loss"] and a["accuracy"] == b["accuracy"]


def test_a_bad_override_fails_before_any_run_directory(tmp_path, run):
    child, _ = run
    result = invoke(["train", str(child), "--set", "optimizer.learning_rate=fast",
                     "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2 and not (tmp_path / "r").exists()
    assert result.stderr == "error: --set optimizer.learning_rate=fast: expected a number, " \
                            "got 'fast'\n"
