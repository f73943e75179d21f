"""A real process: SIGINT finishes the step, writes a checkpoint and exits 130 with the
command to resume; that command, in a fresh process, ends in the very run an
uninterrupted training gives (metrics.jsonl and final weights, bit for bit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resume_helpers import SPEC, same_run
from trainctl.io import RunDir
from trainctl.io.checkpoint import SLOW_WRITE_ENV
from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare

ROOT = Path(__file__).resolve().parent.parent


def test_sigint_then_resume_in_fresh_processes(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    ref = tmp_path / "ref"
    setup = prepare(load_spec(spec))
    Trainer(setup, RunDir(ref).create(setup.resolved_yaml())).fit()  # what the CLI runs

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), SLOW_WRITE_ENV: "0.05"}
    command = [sys.executable, "-m", "trainctl", "train", str(spec), "--run-dir", str(run)]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "latest").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    lines = err.splitlines()
    assert lines[0].startswith("stopped by SIGINT after step ")
    step = int(lines[0].split()[5].rstrip(";"))
    assert lines == [f"stopped by SIGINT after step {step}; checkpoint "
                     f"{run / 'checkpoints' / f'step-{step:09d}'}",
                     f"resume with: trainctl train {spec} --resume {run}"]
    assert 4 <= step < 27 and not (run / "checkpoints" / "final").exists()

    env.pop(SLOW_WRITE_ENV)
    resumed = subprocess.run(command[:5] + ["--resume", str(run)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.startswith(f"resuming {run} from step-{step:09d} (step {step},")
    assert same_run(run, ref)
