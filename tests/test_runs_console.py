"""What ``trainctl train`` prints: --quiet, --log-format json (one JSON object per line,
the records of metrics.jsonl), plain lines off a terminal, no colours with NO_COLOR, a
closed stdout pipe that neither kills nor spoils the run, help that renders, --version."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.cli.common import SafeStdout

SPEC = """\
name: con
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
train: {epochs: 2, log_every_n_steps: 3}
"""
ANSI = re.compile(r"\x1b\[")
COLOR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7]|38;)[0-9;]*m")


@pytest.fixture()
def spec(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_quiet_prints_nothing_and_still_writes_the_run(spec, tmp_path):
    result = invoke("train", str(spec), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    assert (tmp_path / "run" / "checkpoints" / "final").is_dir()


def test_json_log_format_prints_the_records(spec, tmp_path):
    run = tmp_path / "run"
    result = invoke("train", str(spec), "--run-dir", str(run), "--log-format", "json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # every line is JSON
    assert lines[0]["kind"] == "start" and lines[0]["epochs"] == 2
    printed = [line for line in lines if line["kind"] in ("step", "epoch")]
    written = jsonl(run)
    assert [r["kind"] for r in printed] == [r["kind"] for r in written]
    assert sum(r["kind"] == "step" for r in written) == 2 * 6 // 3  # 6 steps an epoch, every 3rd
    assert [("input_wait" in r) for r in printed] == [r["kind"] == "epoch" for r in written]
    for shown, record in zip(printed, written):
        assert shown == record                    # epoch records with input_wait, as written
    assert lines[-2]["kind"] == "test" and 0 <= lines[-2]["accuracy"] <= 1
    assert lines[-1] == {"kind": "end", "run_dir": str(run), "status": "completed"}


def test_plain_lines_off_a_terminal(spec, tmp_path):
    result = invoke("train", str(spec), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 0
    assert not ANSI.search(result.stdout)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("training on cpu:")
    assert sum(line.startswith("epoch ") for line in lines) == 2
    assert sum(line.startswith("step ") for line in lines) == 4
    assert lines[-1] == f"run written to {tmp_path / 'run'}"


def _cli(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run([sys.executable, "-m", "trainctl", *args], capture_output=True,
                          text=True, env={**full, **env}, timeout=300, **kw)


def test_no_color_removes_colours_where_rich_would_use_them(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import trainctl.cli.runs as runs_cli

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "spec.yaml").write_text("name: a\n")
    (run / "run.json").write_text(json.dumps({"status": "completed"}))
    (run / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1, "step": 3, "loss": 0.5}\n')
    terminal = Console(file=io.StringIO(), force_terminal=True, color_system="standard")
    monkeypatch.setattr(runs_cli, "out", terminal)
    assert invoke("runs", "list", str(tmp_path / "runs")).exit_code == 0
    assert COLOR.search(terminal.file.getvalue())  # on a terminal the status has a colour
    plain = _cli(["runs", "list", str(tmp_path / "runs")], {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == 0 and ANSI.search(plain.stdout)  # a terminal, for rich
    assert not COLOR.search(plain.stdout) and "loss 0.5 (e1)" in plain.stdout


def test_a_closed_stdout_pipe_does_not_kill_the_run(spec, tmp_path):
    run = tmp_path / "run"
    cmd = (f"set -o pipefail; {sys.executable} -m trainctl train {spec} --run-dir {run} "
           f"--log-format json --set train.log_every_n_steps=1 | head -1")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr  # pipefail: trainctl's own exit code
    assert proc.stderr == ""
    assert json.loads(proc.stdout)["kind"] == "start"
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    assert (run / "checkpoints" / "final").is_dir() and len(jsonl(run)) == 2 + 12


def test_safe_stdout_silences_a_broken_pipe(monkeypatch):
    read, write = os.pipe()
    os.close(read)
    stream = open(write, "w", buffering=1)
    saved = os.dup(1)
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(SafeStdout, "broken", False)
    try:
        os.dup2(write, 1)
        safe = SafeStdout()
        assert safe.write("x" * 100 + "\n") == 101  # EPIPE inside: no exception
        safe.flush()
        assert SafeStdout.broken and safe.write("more\n") == 5
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        monkeypatch.setattr(SafeStdout, "broken", False)


def test_help_renders_names_and_flags():
    result = invoke("train", "--help")
    text = ANSI.sub("", result.stdout)
    assert result.exit_code == 0
    assert re.search(r"Usage: \S+ train \[OPTIONS\] SPEC\b", text), text[:300]
    assert "{" not in text.split("\n\n")[0] and "<bool>" not in text
    assert re.search(r"--quiet\s+-q\s+Print nothing", text)
    for command in (["runs", "list", "--help"], ["plot", "--help"], ["eval", "--help"]):
        text = ANSI.sub("", invoke(*command).stdout)
        assert "<bool>" not in text and "<path>" not in text, command


def test_version():
    import trainctl

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"trainctl {trainctl.__version__}"


def test_rich_bars_show_eta_samples_per_second_and_live_metrics():
    import io

    import torch
    from rich.console import Console

    from trainctl.autodiff.tensor import Tensor
    from trainctl.cli.progress import RichReporter

    console = Console(file=io.StringIO(), force_terminal=True, width=160, no_color=True)
    rep = RichReporter(console, refresh=0.0)
    rep.on_train_begin({"epochs": 2, "steps": None, "device": "cpu", "params": 10,
                        "train_size": 64, "initial_epoch": 0, "initial_step": 0,
                        "running": lambda: {"loss": 0.5, "accuracy": 0.75}})
    rep.on_epoch_begin(1, 4)
    for step in range(1, 4):
        rep.on_batch_end(step, 16, Tensor(torch.tensor(0.5)))
    rep.progress.refresh()
    live = console.file.getvalue()
    assert "epochs" in live and "epoch 1/2" in live and "eta" in live
    assert "loss 0.5000" in live and "accuracy 0.7500" in live and "samples/s" in live
    assert "3/4" in live  # steps of the epoch done
    rep.on_epoch_end(1, {"kind": "epoch", "epoch": 1, "step": 4, "loss": 0.5, "seconds": 0.5})
    rep.on_train_end([])
    assert "epoch 1/2  loss 0.5" in console.file.getvalue()
