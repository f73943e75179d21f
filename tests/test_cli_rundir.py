"""Where ``trainctl train`` writes, and what it leaves when a run cannot finish."""

from __future__ import annotations

import os
import stat

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.train import Trainer

SPEC = """\
name: rundir-iris
seed: 0
data:
  source: {type: iris}
  batch_size: 32
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: {type: sgd, learning_rate: 0.1}
train: {epochs: 1}
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    return path


def run(*args):
    return CliRunner().invoke(app, ["train", *map(str, args)])


def test_a_non_empty_folder_is_refused_and_left_untouched(spec, tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "spec.yaml").write_text("# my precious comment\n")
    result = run(spec, "--run-dir", folder)
    assert result.exit_code == 2
    assert "exists and is not empty" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["spec.yaml"]
    assert (folder / "spec.yaml").read_text() == "# my precious comment\n"


def test_the_current_directory_is_not_a_run_directory(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # holds s.yaml, so it is not empty
    result = run(spec, "--run-dir", "")
    assert result.exit_code == 2 and "is not empty" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_an_empty_folder_is_used(spec, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert run(spec, "--run-dir", folder).exit_code == 0
    assert (folder / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.parametrize("pre_existing", [False, True])
def test_an_interrupted_run_leaves_nothing_behind(spec, tmp_path, monkeypatch, pre_existing):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    target = tmp_path / "a" / "b" / "c"
    if pre_existing:
        target.mkdir(parents=True)
    result = run(spec, "--run-dir", target)
    assert result.exit_code == 130
    if pre_existing:
        assert target.is_dir() and list(target.iterdir()) == []
    else:
        assert not (tmp_path / "a").exists()  # the parents it made are gone too


def test_a_very_long_name_or_path_is_a_clear_error(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    long_name = spec.read_text().replace("name: rundir-iris", "name: " + "n" * 300)
    spec.write_text(long_name)
    result = run(spec, "--epochs", "1")
    assert result.exit_code == 0, result.output  # the default run name is shortened
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(run_dir.name) < 120
    result = run(spec, "--run-dir", tmp_path / ("y" * 300))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "run directory" in result.output
    result = CliRunner().invoke(app, ["eval", str(spec), "--checkpoint", str(tmp_path / ("z" * 300))])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_checkpoint_files_get_the_usual_permissions(spec, tmp_path):
    old = os.umask(0o022)
    try:
        assert run(spec, "--run-dir", tmp_path / "r").exit_code == 0
    finally:
        os.umask(old)
    final = tmp_path / "r" / "checkpoints" / "final"
    assert stat.S_IMODE(final.stat().st_mode) == 0o755
    for file in final.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name
