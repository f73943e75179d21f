"""``trainctl validate``: every example spec passes, every bad-spec case gives its expected
error, every error of a file is reported at once (schema, names, options, shapes, data),
overrides and bases are checked like files, and torch is never imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.cli.validate import check_spec_file

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
BAD = Path(__file__).parent / "fixtures" / "specs_bad"

GOOD = """\
name: tiny
data:
  source: {type: iris}
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
"""


def expected_rows() -> dict[str, tuple[int | None, list[str]]]:
    rows = {}
    for row in (BAD / "expected.txt").read_text().splitlines():
        if row.strip() and not row.startswith("#"):
            name, rest = row.split(":", 1)
            line, *words = [part.strip() for part in rest.split("|")]
            rows[name.strip()] = (None if line == "-" else int(line), [w for w in words if w])
    return rows


EXPECTED = expected_rows()


def validate(*args: str):
    result = CliRunner().invoke(app, ["validate", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def error_lines(result) -> list[str]:
    lines = result.stderr.splitlines()
    assert all(line.startswith("error: ") for line in lines), lines
    return [line.removeprefix("error: ") for line in lines]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_example_spec_validates():
    assert SPECS
    result = validate(*map(str, SPECS))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [f"OK  {p}" for p in SPECS]
    assert result.stderr == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_bad_case_gives_its_expected_error(name):
    spec = BAD / name
    result = validate(str(spec))
    assert result.exit_code == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    line, words = EXPECTED[name]
    errors = error_lines(result)
    where = re.escape(str(spec)) + (rf":{line}(:\d+)?: " if line is not None else ": ")
    hits = [e for e in errors if re.match(where, e) and all(w.lower() in e.lower() for w in words)]
    assert hits, errors
    assert len(errors) == 1, errors  # each case holds one mistake: nothing else is invented


def test_all_errors_of_a_file_at_once(tmp_path):
    spec = write(tmp_path / "many.yaml", """\
name: many
seed: -1
data:
  source: {type: iris}
model:
  input_shape: [4]
  layers:
    - {type: dense, unist: 8}
    - {type: dens, units: 3}
    - {type: dropout, rate: 1.5}
loss: {type: sparse_categorical_crossentropy, from_logit: true}
metrics: [accuracy, acuracy]
optimizer: {type: adam, learning_rate: fast}
train: {epochs: 0}
""")
    result = validate(str(spec))
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"{spec}:2:7: seed: must be >= 0, got -1",
        f"{spec}:8:21: model.layers[0].unist: unknown field; did you mean 'units'?",
        f"{spec}:9:14: model.layers[1].type: unknown layer type 'dens'; did you mean 'dense'?",
        f"{spec}:10:29: model.layers[2].rate: must be < 1.0, got 1.5",
        f"{spec}:11:47: loss.from_logit: unknown field; did you mean 'from_logits'?",
        f"{spec}:12:21: metrics[1]: unknown metric 'acuracy'; did you mean 'accuracy' or "
        "'top_k_accuracy' or 'binary_accuracy'?",
        f"{spec}:13:40: optimizer.learning_rate: expected a number, got 'fast'",
        f"{spec}:14:17: train.epochs: must be > 0, got 0",
    ]


@pytest.mark.parametrize("text, first", [
    ("data:\n  source: {type: digitz}\n  batch_size: -3\n",
     None),  # the reviewer's example: both data errors
    ("seed: zero\ndata:\n  source: {type: digitz}\n",
     "{s}:2:7: seed: expected an integer, got 'zero'"),  # the data section alone is valid
])
def test_data_errors_are_reported_with_the_schema_errors(tmp_path, text, first):
    spec = write(tmp_path / "b.yaml", f"base: {ROOT / 'specs' / 'digits_mlp.yaml'}\n{text}")
    source = (f"{spec}:{3 if first is None else 4}:18: "
              "data.source.type: unknown data source 'digitz'; did you mean 'digits'?")
    expected = [source, f"{spec}:4:15: data.batch_size: must be > 0, got -3"] if first is None \
        else [first.format(s=spec), source]
    assert [str(e) for e in check_spec_file(spec, [])] == expected
    result = validate(str(spec))
    assert result.exit_code == 2 and error_lines(result) == expected


def test_data_section_steps_are_checked_when_the_schema_fails(tmp_path):
    spec = write(tmp_path / "s.yaml", GOOD.replace("name: tiny", "name: tiny\nseed: -1").replace(
        "  source: {type: iris}", "  train:\n    source: {type: iris}\n"
        "    steps: [{type: shufle}, {type: batch, batch_size: 0}]"))
    errors = [str(e) for e in check_spec_file(spec, [])]
    assert errors[0] == f"{spec}:2:7: seed: must be >= 0, got -1"
    assert any(":6:20: data.train.steps[0].type: unknown pipeline step" in e and "'shuffle'" in e
               for e in errors), errors
    assert any("data.train.steps[1].batch_size: must be > 0" in e for e in errors), errors


def test_shape_data_and_reference_errors_together(tmp_path):
    spec = write(tmp_path / "fit.yaml", GOOD.replace("input_shape: [4]", "input_shape: [5]")
                 .replace("[accuracy]", "[accuracy, precison]"))
    assert [str(e) for e in check_spec_file(spec, [])] == [
        f"{spec}:5:16: model.input_shape: input_shape [5] does not match the data: source "
        "'iris' gives samples of shape [4]",
        f"{spec}:10:21: metrics[1]: unknown metric 'precison'; did you mean 'precision'?"]


@pytest.mark.parametrize("change, message", [
    (("units: 3}", "units: 4}"), "{s}:8:7: model.layers[1]: the model outputs shape [4] but "
                                 "sparse_categorical_crossentropy on 3 classes (source 'iris') "
                                 "needs [3]"),
    (("{type: iris}", "{type: diabetes}"),
     "{s}:5:16: model.input_shape: input_shape [4] does not match the data: source "
     "'diabetes' gives samples of shape [10]"),
    (("loss: {type: sparse_categorical_crossentropy, from_logits: true}",
      "loss: binary_crossentropy"), "{s}:9:7: loss.type: binary_crossentropy needs 2 classes, "
                                    "source 'iris' has 3"),
    (("{type: iris}\nmodel:\n  input_shape: [4]", "{type: diabetes}\nmodel:\n  input_shape: [10]"),
     "{s}:9:14: loss.type: sparse_categorical_crossentropy needs class labels, but source "
     "'diabetes' gives regression targets"),
    (("input_shape: [4]", "input_shape: [2, 2]"), "{s}:5:16: model.input_shape: input_shape "
                                                  "[2,2] does not match the data: source "
                                                  "'iris' gives samples of shape [4]"),
])
def test_fit_of_model_data_and_loss(tmp_path, change, message):
    spec = write(tmp_path / "s.yaml", GOOD.replace(*change))
    assert [str(e) for e in check_spec_file(spec, [])] == [message.format(s=spec)]


def test_shape_inference_without_data(tmp_path):
    spec = write(tmp_path / "s.yaml", GOOD.replace("input_shape: [4]", "input_shape: [2, 2]")
                 .replace("- {type: dense, units: 8, activation: relu}",
                          "- {type: flatten}\n    - {type: flatten}\n    - {type: dense, units: 3}"))
    errors = [str(e) for e in check_spec_file(spec, [])]
    assert errors == [f"{spec}:5:16: model.input_shape: input_shape [2,2] does not match the "
                      "data: source 'iris' gives samples of shape [4]"]  # [2,2] flattens fine


def test_overrides_are_validated_and_named(tmp_path):
    spec = write(tmp_path / "s.yaml", GOOD)
    result = validate(str(spec), "--set", "optimizer.learning_rate=fast",
                      "--set", "model.layers[0].unist=3")
    assert result.exit_code == 2
    assert error_lines(result) == [
        "--set optimizer.learning_rate=fast: expected a number, got 'fast'",
        "--set model.layers[0].unist=3: unknown field; did you mean 'units'?"]
    result = validate(str(spec), "--set", "model.layers[1].units=4")
    assert error_lines(result) == [  # the entry is the file's, its units the override's
        f"{spec}:8:7: model.layers[1]: the model outputs shape [4] but "
        "sparse_categorical_crossentropy on 3 classes (source 'iris') needs [3]"]
    good = validate(str(spec), "--set", "model.layers[1].units=3", "--set", "train.epochs=2")
    assert good.exit_code == 0 and good.stdout == f"OK  {spec}\n"


def test_bases_are_checked_with_each_error_in_its_file(tmp_path):
    base = write(tmp_path / "base.yaml", GOOD.replace("units: 8,", "units: -8,"))
    (tmp_path / "exp").mkdir()
    child = write(tmp_path / "exp" / "child.yaml",
                  "base: ../base.yaml\noptimizer: {type: sgd, momentum: -1}\n")
    result = validate(str(child))
    assert error_lines(result) == [
        f"{child}:2:34: optimizer.momentum: must be >= 0.0, got -1",
        f"{base}:7:28: model.layers[0].units: must be > 0, got -8"]


def test_good_and_bad_specs_in_one_call(tmp_path):
    good = write(tmp_path / "good.yaml", GOOD)
    bad = write(tmp_path / "bad.yaml", GOOD.replace("adam", "adma"))
    result = validate(str(good), str(bad), str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2
    assert result.stdout == f"OK  {good}\n"
    assert error_lines(result) == [
        f"{bad}:11:19: optimizer.type: unknown optimizer 'adma'; did you mean 'adam' or 'adamw'?",
        f"{tmp_path / 'missing.yaml'}: file not found"]


def test_unreadable_data_is_reported(tmp_path):
    spec = write(tmp_path / "s.yaml", GOOD.replace("{type: iris}",
                                                   "{type: csv, path: nope.csv, label: y}"))
    errors = [str(e) for e in check_spec_file(spec, [])]
    assert len(errors) == 1 and "nope.csv" in errors[0] and str(spec) in errors[0], errors


def test_validate_never_imports_torch_sklearn_or_rich(tmp_path):
    """Those imports alone take seconds (torch, scikit-learn) or tens of ms (rich): the data
    facts come from each source's describe(), the output is plain lines."""
    bad = write(tmp_path / "bad.yaml", GOOD.replace("units: 3}", "units: 4}"))
    code = ("import sys\n"
            "from trainctl.cli.app import app\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, sorted({m.split('.')[0] for m in sys.modules}\n"
            "                           & {'torch', 'sklearn', 'scipy', 'rich'}))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, "validate", *map(str, SPECS), str(bad)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.stdout.splitlines()[-1] == "2 []", proc.stdout + proc.stderr
    assert proc.stdout.count("OK  ") == len(SPECS) and "needs [3]" in proc.stderr
