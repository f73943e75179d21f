"""``trainctl train`` on bad input: exit code 2, one clear line on stderr, no traceback, and
no run directory left behind.

The bad specs and the line and words each error must show are in
tests/fixtures/specs_bad (copied from the shared cases, listed in expected.txt).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from trainctl.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
BAD = Path(__file__).parent / "fixtures" / "specs_bad"
SHARED = Path("/work/shared/cases/specs-bad")

TINY = """\
name: tiny
seed: 0
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 4, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 1}
"""


def expected_rows() -> dict[str, tuple[int | None, list[str]]]:
    """file name -> (line or None for ``-``, words) from expected.txt."""
    rows = {}
    for row in (BAD / "expected.txt").read_text().splitlines():
        if not row.strip() or row.startswith("#"):
            continue
        name, rest = row.split(":", 1)
        line, *words = [part.strip() for part in rest.split("|")]
        rows[name.strip()] = (None if line == "-" else int(line), [w for w in words if w])
    return rows


EXPECTED = expected_rows()
NAMES = sorted(EXPECTED)


def test_fixtures_and_expected_rows_match():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == NAMES
    assert len(NAMES) == 10


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared cases not present")
def test_fixtures_are_copies_of_the_shared_cases():
    for case in sorted(SHARED.iterdir()):
        assert (BAD / case.name).read_bytes() == case.read_bytes(), case.name


def check_one_line_error(exit_code: int, stdout: str, stderr: str, run_dir: Path) -> str:
    """The common contract; returns the error line (without ``error: ``)."""
    assert exit_code == 2, stdout + stderr
    assert "Traceback" not in stdout + stderr
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert not run_dir.exists()
    return lines[0].removeprefix("error: ")


def check_located(message: str, spec: Path) -> None:
    line, words = EXPECTED[spec.name]
    if line is None:
        assert message.startswith(f"{spec}: "), message
        assert not re.match(re.escape(str(spec)) + r":\d", message)
    else:
        assert re.match(re.escape(f"{spec}:{line}") + r"(:\d+)?: ", message), message
    for word in words:
        assert word.lower() in message.lower(), (word, message)


def invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a bug: show its traceback
    return result


@pytest.mark.parametrize("name", NAMES)
def test_train_bad_spec(name, tmp_path):
    spec, run = BAD / name, tmp_path / "run"
    result = invoke(["train", str(spec), "--run-dir", str(run)])
    message = check_one_line_error(result.exit_code, result.stdout, result.stderr, run)
    check_located(message, spec)


def test_unknown_field_is_reported_once_as_the_unknown_key(tmp_path):
    spec, run = BAD / "unknown_field.yaml", tmp_path / "run"
    result = invoke(["train", str(spec), "--run-dir", str(run)])
    message = check_one_line_error(result.exit_code, result.stdout, result.stderr, run)
    assert message == f"{spec}:10:21: model.layers[0].unist: unknown field; did you mean 'units'?"


def run_module(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    return subprocess.Popen([sys.executable, "-m", "trainctl", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_train_bad_specs_as_a_real_process(tmp_path):
    # one found by the spec package alone, one once the model is built (torch loaded);
    # started together, as most of a run is importing
    names = ["missing_loss.yaml", "unknown_field.yaml"]
    procs = {name: run_module(["train", str(BAD / name), "--run-dir", str(tmp_path / name)],
                              tmp_path) for name in names}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        message = check_one_line_error(proc.returncode, stdout, stderr, tmp_path / name)
        check_located(message, BAD / name)
    assert os.listdir(tmp_path) == []


# ---- bad input other than the spec's content -------------------------------------------


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def train_fails(tmp_path, *args: str) -> str:
    run = tmp_path / "run"
    result = invoke(["train", *args, "--run-dir", str(run)])
    return check_one_line_error(result.exit_code, result.stdout, result.stderr, run)


def test_missing_spec_file(tmp_path):
    spec = tmp_path / "nope.yaml"
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec)) and "not found" in message


def test_spec_path_is_a_directory(tmp_path):
    spec = tmp_path / "adir"
    spec.mkdir()
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec)) and "directory" in message


def test_empty_spec_file(tmp_path):
    spec = tmp_path / "empty.yaml"
    spec.write_text("")
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec)) and "empty" in message


def test_comments_only_spec_file(tmp_path):
    spec = tmp_path / "comments.yaml"
    spec.write_text("# nothing here\n")
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec)) and "empty" in message


@pytest.mark.parametrize("junk", [bytes(range(256)), b"\x00\x01\xff\xfe" * 8,
                                  b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_binary_junk(tmp_path, junk):
    spec = tmp_path / "junk.yaml"
    spec.write_bytes(junk)
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec))


def test_top_level_not_a_mapping(tmp_path):
    spec = tmp_path / "list.yaml"
    spec.write_text("- a\n- b\n")
    message = train_fails(tmp_path, str(spec))
    assert message.startswith(str(spec)) and "mapping" in message


def test_epochs_zero(tmp_path, tiny):
    message = train_fails(tmp_path, str(tiny), "--epochs", "0")
    assert "train.epochs" in message and "0" in message and "command line" in message


def test_negative_seed(tmp_path, tiny):
    message = train_fails(tmp_path, str(tiny), "--seed", "-1")
    assert "seed" in message and "-1" in message


def test_unknown_device(tmp_path, tiny):
    message = train_fails(tmp_path, str(tiny), "--device", "tpu")
    assert "tpu" in message and "cpu" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda(tmp_path, tiny):
    message = train_fails(tmp_path, str(tiny), "--device", "cuda")
    assert "cuda" in message and "not available" in message and "cpu" in message


def test_run_dir_is_a_file(tmp_path, tiny):
    run = tmp_path / "taken"
    run.write_text("not a directory")
    result = invoke(["train", str(tiny), "--run-dir", str(run)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1 and str(run) in result.stderr
    assert run.read_text() == "not a directory"


def test_run_dir_holding_a_run_is_left_alone(tmp_path, tiny):
    run = tmp_path / "old"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    result = invoke(["train", str(tiny), "--run-dir", str(run)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1 and "already holds a run" in result.stderr
    assert sorted(os.listdir(run)) == ["metrics.jsonl"]


def test_a_spec_error_is_reported_before_torch_loads(tmp_path):
    code = ("import sys\n"
            "from trainctl.cli.app import app\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, 'torch' in sys.modules)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, "train", str(BAD / "missing_loss.yaml"),
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert "loss: missing required field" in proc.stderr and "Traceback" not in proc.stderr
