"""``trainctl eval`` refuses a spec that describes another model or other data than the
checkpoint's, and its JSON never holds NaN."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app

SPEC = """\
name: eval-iris
seed: 0
data:
  source: {type: iris}
  batch_size: 32
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: sgd, learning_rate: 0.1}
train: {epochs: 1}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    spec = root / "s.yaml"
    spec.write_text(SPEC)
    assert CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(root / "run")]).exit_code == 0
    return root, spec


def evaluate(spec, run, *extra):
    return CliRunner().invoke(app, ["eval", str(spec), "--checkpoint", str(run), *extra])


def test_the_training_spec_evaluates(trained):
    root, spec = trained
    result = evaluate(spec, root / "run", "--json")
    assert result.exit_code == 0
    assert 0.0 <= json.loads(result.stdout)["accuracy"] <= 1.0


@pytest.mark.parametrize("edit, named", [
    (("standardize: true", "standardize: false"), "data.standardize"),
    (("source: {type: iris}", "source: {type: iris}\n  split: {validation: 0.1, test: 0.5}"),
     "data.split.test"),
    (("{type: dense, units: 3}", "{type: dense, units: 3, activation: softmax}"),
     "model.layers"),
])
def test_a_spec_with_other_model_or_data_is_refused(trained, tmp_path, edit, named):
    root, _ = trained
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace(*edit))
    result = evaluate(other, root / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "does not describe the model and data" in result.output and named in result.output


def test_training_only_changes_are_fine(trained, tmp_path):
    root, _ = trained
    other = tmp_path / "other.yaml"
    other.write_text(SPEC.replace("batch_size: 32", "batch_size: 8").replace("epochs: 1", "epochs: 9"))
    assert evaluate(other, root / "run").exit_code == 0


def test_json_output_writes_null_for_a_non_finite_loss(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    root, spec = trained
    ckpt = root / "run" / "checkpoints" / "final"
    weights = load_file(str(ckpt / "weights.safetensors"))
    broken = tmp_path / "broken"
    import shutil
    shutil.copytree(ckpt, broken)
    weights["dense/kernel"][:] = float("nan")
    save_file(weights, str(broken / "weights.safetensors"))
    import hashlib  # the MANIFEST holds sha256sum lines: rewrite the edited file's
    lines = []
    for line in (broken / "MANIFEST").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        lines.append(f"{hashlib.sha256((broken / name).read_bytes()).hexdigest()}  {name}")
    (broken / "MANIFEST").write_text("\n".join(lines) + "\n")
    result = evaluate(spec, broken, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert payload["loss"] is None


def test_split_and_data_together_are_refused(trained, tmp_path):
    root, spec = trained
    data = tmp_path / "d.csv"
    data.write_text("a,b,c,d,label\n1,2,3,4,0\n")
    result = evaluate(spec, root / "run", "--split", "validation", "--data", str(data))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == (f"error: --split validation and --data {data}: give one, not "
                                     f"both (--data evaluates on that file instead of a split)")
    result = evaluate(spec, root / "run", "--split", "validation", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["split"] == "validation"
