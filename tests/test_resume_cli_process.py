"""Real processes: SIGINT finishes the step, writes a checkpoint and exits 130 with the
command to resume; that command, in a fresh Python process, ends in the very run an
uninterrupted training gives (metrics.jsonl and final weights, bit for bit).

The interrupted run is a forked process running the CLI (its imports inherited, so it
starts at once); the resumed one is a new interpreter, as a user would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resume_helpers import SPEC, fork_cli, same_run, wait
from trainctl.io import RunDir
from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare

ROOT = Path(__file__).resolve().parent.parent


def test_sigint_then_resume_in_a_fresh_process(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    ref = tmp_path / "ref"
    setup = prepare(load_spec(spec))
    Trainer(setup, RunDir(ref).create(setup.resolved_yaml())).fit()  # what the CLI runs

    run, log = tmp_path / "run", tmp_path / "interrupted.log"
    pid = fork_cli(["train", str(spec), "--run-dir", str(run)], slow_write=0.05, output=log)
    deadline = time.monotonic() + 60
    while not (run / "checkpoints" / "latest").exists() and time.monotonic() < deadline:
        assert os.waitpid(pid, os.WNOHANG)[0] == 0, log.read_text()
        time.sleep(0.005)
    os.kill(pid, signal.SIGINT)
    assert wait(pid, timeout=60) == 130, log.read_text()
    lines = log.read_text().splitlines()[-2:]
    assert lines[0].startswith("stopped by SIGINT after step "), log.read_text()
    step = int(lines[0].split()[5].rstrip(";"))
    assert lines == [f"stopped by SIGINT after step {step}; checkpoint "
                     f"{run / 'checkpoints' / f'step-{step:09d}'}",
                     f"resume with: trainctl train {spec} --resume {run}"]
    assert 4 <= step < 27 and not (run / "checkpoints" / "final").exists()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    resumed = subprocess.run([sys.executable, "-m", "trainctl", "train", str(spec), "--resume",
                              str(run)], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed.stdout.startswith(f"resuming {run} from step-{step:09d} (step {step},")
    assert same_run(run, ref)
