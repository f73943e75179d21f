"""``trainctl train`` as a data-parallel job: ranks started the torchrun way (environment
variables; forked here, so no start-up cost), resume with the same and with another
number of processes, and ``--nproc`` tearing the job down when a rank is killed."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

import trainctl.cli.train_parallel  # noqa: F401  (imported before forking)
import trainctl.train.distributed  # noqa: F401
from distributed_helpers import free_port, write_spec
from resume_helpers import fork_cli, wait

REPO = Path(__file__).resolve().parent.parent


def _ranks(args: list[str], out: Path, world: int = 2) -> list[int]:
    """Run ``trainctl ARGS`` as ``world`` forked ranks (torchrun's variables); exit codes."""
    saved = dict(os.environ)
    pids = []
    try:
        os.environ.update(WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=free_port())
        for rank in range(world):
            os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank))
            pids.append(fork_cli(args, output=out / f"out-{rank}.txt"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return [wait(pid, 90) for pid in pids]


def _epochs(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind", "epoch") == "epoch"]


def test_ranks_train_one_run_directory_and_resume_with_the_same_world_size(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", batch=8, steps=1)
    spec.write_text(spec.read_text().replace("train: {steps: 1}", "train: {epochs: 2}"))
    run = tmp_path / "run"
    args = ["train", str(spec), "--run-dir", str(run)]
    assert _ranks(args, tmp_path) == [0, 0], (tmp_path / "out-0.txt").read_text()
    out0, out1 = (tmp_path / "out-0.txt").read_text(), (tmp_path / "out-1.txt").read_text()
    assert "data-parallel: 2 processes, backend gloo" in out0 and out1 == ""
    assert [r["epoch"] for r in _epochs(run)] == [1, 2]
    assert [r["step"] for r in _epochs(run)] == [13, 26]  # 208 samples / (2 x 8) per step
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert state["world_size"] == 2
    assert not list(tmp_path.glob("runs"))  # no stray run directory from rank 1

    assert _ranks([*args, "--resume", str(run), "--epochs", "3"], tmp_path) == [0, 0]
    assert [r["epoch"] for r in _epochs(run)] == [1, 2, 3]
    assert "resuming" in (tmp_path / "out-0.txt").read_text()

    pid = fork_cli([*args, "--resume", str(run), "--epochs", "4"], output=tmp_path / "one.txt")
    assert wait(pid, 60) == 2
    message = (tmp_path / "one.txt").read_text()
    assert "written by 2 data-parallel process(es), this run has 1" in message
    assert "--nproc 2" in message
    assert len(_epochs(run)) == 3


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def test_nproc_ends_the_job_when_a_rank_is_killed(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", batch=8, steps=1, timeout=30)
    spec.write_text(spec.read_text().replace("train: {steps: 1}", "train: {epochs: 500}"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    job = subprocess.Popen([sys.executable, "-m", "trainctl", "train", str(spec), "--nproc", "2",
                            "--run-dir", str(run), "--quiet"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list((run / "checkpoints").glob("step-*")):  # epoch 1 is done
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "the job did not finish an epoch"
            time.sleep(0.1)
        victim = next(p for p in _children(job.pid) if _rank_of(p) == 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = job.communicate(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode != 0
    assert "rank 1 of 2 was killed by SIGKILL; stopping the other ranks" in err
    step = sorted((run / "checkpoints").glob("step-*"))[0]  # rank 0's epoch checkpoint stays
    weights = load_file(str(step / "weights.safetensors"))
    assert all(np.isfinite(v).all() for v in weights.values())


def test_ctrl_c_on_nproc_is_one_interrupted_line_and_the_resume_hint(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", batch=8, steps=1, timeout=30)
    spec.write_text(spec.read_text().replace("train: {steps: 1}", "train: {epochs: 2}"))
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    job = subprocess.Popen([sys.executable, "-m", "trainctl", "train", str(spec), "--nproc", "2",
                            "--epochs", "500", "--run-dir", str(run), "--quiet"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((run / "checkpoints").glob("step-*")):  # epoch 1 is done
            assert job.poll() is None, job.communicate()
            assert time.monotonic() < deadline, "the job did not finish an epoch"
            time.sleep(0.1)
        os.killpg(job.pid, signal.SIGINT)  # what Ctrl-C does: the launcher and both ranks
        _, err = job.communicate(timeout=60)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 130, err
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("interrupted after step "), err
    assert "; the last checkpoint is " in lines[0]
    assert shlex.split(lines[1].removeprefix("resume with: ")) == [
        "trainctl", "train", str(spec), "--resume", str(run), "--epochs", "500", "--nproc", "2"]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"


def test_nproc_under_a_launcher_is_refused(tmp_path):
    from typer.testing import CliRunner

    from trainctl.cli.app import app

    spec = write_spec(tmp_path / "s.yaml", batch=8, steps=1)
    result = CliRunner().invoke(app, ["train", str(spec), "--nproc", "2"],
                                env={"WORLD_SIZE": "2", "RANK": "0"})
    assert result.exit_code == 2
    assert "under torchrun (WORLD_SIZE is set) leave it out" in result.output
    assert not (tmp_path / "runs").exists()
