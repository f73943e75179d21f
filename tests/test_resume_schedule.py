"""Resume with a schedule in the spec: a run of N steps equals k steps + stop + resume +
N - k steps, bit for bit (metrics.jsonl but wall-clock fields, final weights), with
shuffling, dropout, a warmup + cosine schedule (or reduce_on_plateau), early stopping, step
records and evaluations every N steps; a changed schedule needs --apply-optimizer-changes.
Case R1 (cases/resume.md) driven by the spec's step schedule, resumed in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from control_helpers import StopAt, final_weights, make_spec, new_trainer, records, same_weights
from resume_helpers import scramble_generators
from trainctl.cli.app import app
from trainctl.errors import CheckpointError
from trainctl.io import RunDir, load_checkpoint
from trainctl.train import Trainer, prepare
from trainctl.train.resume import apply_resume, plan_resume

ROOT = Path(__file__).resolve().parent.parent
COSINE = "{type: cosine, warmup_steps: 5, warmup_start_factor: 0.2, min_learning_rate: 0.001}"
PLATEAU = "{type: reduce_on_plateau, interval: step, patience: 0, factor: 0.7}"


def spec_with(schedule: str):
    return make_spec(train="{epochs: 3, log_every_n_steps: 2, eval_every_n_steps: 5}",
                     schedule=schedule, checkpoint="{every_n_steps: 4, keep_last: 2}",
                     callbacks="[{type: early_stopping, monitor: val_loss, patience: 4}]")


def resume(run: Path, spec, **kw):
    scramble_generators()  # as a fresh process would have them
    setup = prepare(spec)
    plan = plan_resume(run, setup, **kw)
    trainer = Trainer(setup, RunDir.open(run))
    return trainer, plan, apply_resume(trainer, plan)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    runs = {}
    for name, schedule in (("cosine", COSINE), ("plateau", PLATEAU)):
        runs[name] = tmp_path_factory.mktemp(name) / "run"
        new_trainer(spec_with(schedule), runs[name]).fit()
    return runs


def test_references_change_the_rate_and_write_every_record_kind(references):
    for run in references.values():
        recs = records(run)
        assert len({r["learning_rate"] for r in recs}) >= 3
        assert {r["kind"] for r in recs} == {"step", "epoch"} and recs[-1]["step"] == 27
        assert sum("val_loss" in r for r in recs if r["kind"] == "step") == 5


# 1 and 13: mid-epoch, no periodic checkpoint there; 9: an epoch end; 16: a periodic
# checkpoint mid-epoch; 10 and 22: a step record; 20 and 25: an evaluation step
@pytest.mark.parametrize("name, k", [("cosine", k) for k in (1, 9, 13, 16, 22, 25)] +
                         [("plateau", k) for k in (10, 20)])
def test_stop_and_resume_is_bit_identical(tmp_path, references, name, k):
    schedule = COSINE if name == "cosine" else PLATEAU
    run = tmp_path / "run"
    new_trainer(spec_with(schedule), run, StopAt(k)).fit()
    _, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert state["step"] == k and state["schedule"]["type"] == (
        "cosine" if name == "cosine" else "reduce_on_plateau")
    trainer, plan, warnings = resume(run, spec_with(schedule))
    assert warnings == [] and plan.changes == []
    trainer.fit()
    assert records(run) == records(references[name])
    assert same_weights(final_weights(run), final_weights(references[name]))


def test_plateau_state_is_in_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    new_trainer(spec_with(PLATEAU), run, StopAt(20)).fit()
    _, _, state = load_checkpoint(run / "checkpoints" / "latest")
    saved = state["schedule"]
    assert saved["checks"] == 4 and saved["learning_rate"] is not None  # reduced at least once
    assert set(saved) == {"type", "interval", "scale", "best", "bad", "cooldown_left", "checks",
                          "learning_rate"}


def test_a_changed_schedule_needs_the_flag(tmp_path):
    run = tmp_path / "run"
    new_trainer(spec_with(COSINE), run, StopAt(13)).fit()
    changed = COSINE.replace("min_learning_rate: 0.001", "min_learning_rate: 0.002")
    with pytest.raises(CheckpointError, match=r"the optimizer or schedule changed since the "
                                              r"checkpoint:\n  schedule.min_learning_rate: "
                                              r"0.001 -> 0.002"):
        resume(run, spec_with(changed))
    with pytest.raises(CheckpointError, match=r"schedule.type: 'cosine' -> 'exponential'"):
        resume(run, spec_with("{type: exponential, gamma: 0.9, interval: step}"))
    trainer, plan, _ = resume(run, spec_with(changed), apply_optimizer_changes=True)
    assert [c.kind for c in plan.changes] == ["needs_flag"]
    trainer.fit()
    assert trainer.schedule.config.min_learning_rate == 0.002
    last = records(run)[-1]
    assert last["learning_rate"] == pytest.approx(trainer.schedule.rate(26, 2))


def test_raising_epochs_changes_the_cosine_length_so_it_needs_the_flag(tmp_path):
    run = tmp_path / "run"
    new_trainer(spec_with(COSINE), run, StopAt(13)).fit()
    longer = make_spec(train="{epochs: 4, log_every_n_steps: 2, eval_every_n_steps: 5}",
                       schedule=COSINE, checkpoint="{every_n_steps: 4, keep_last: 2}",
                       callbacks="[{type: early_stopping, monitor: val_loss, patience: 4}]")
    with pytest.raises(CheckpointError, match=r"schedule.decay_steps: 22 -> 31"):
        resume(run, longer)


# ---- case R1 through the spec and the CLI ----------------------------------------------
R1_SPEC = """\
name: r1
seed: 0
device: cpu
data:
  source: {type: npz, path: r1.npz}
  split: {validation: 0.0, test: 0.0}
  batch_size: 2
  shuffle: false
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 1, use_bias: false}
loss: mean_squared_error
optimizer: {type: adam, learning_rate: 0.1}
schedule: {type: step, step_size: 2, gamma: 0.5}
train: {epochs: 6}
"""
RATES = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
FINAL = [1.348676988806097, -1.650807689454836]  # float64 and loss sum((p - t)²) in the case
SCHEDULE_LOST = [1.373403315137338, -1.6259739644959883]
MOMENTS_LOST = [1.3495415377554414, -1.6502806667232646]


@pytest.fixture(scope="module")
def r1(tmp_path_factory) -> Path:
    """p is dense/kernel, p0 = [1, -2] from --init-from; the two samples (one batch) pick
    p[0] and p[1] with targets 3 and 1: the mean squared error is sum((p - [3, 1])²) / 2."""
    root = tmp_path_factory.mktemp("r1")
    np.savez(root / "r1.npz", x=np.eye(2, dtype=np.float32), y=np.array([3.0, 1.0], np.float32))
    import torch

    save_file({"dense/kernel": torch.tensor([[1.0], [-2.0]])}, str(root / "p0.safetensors"))
    (root / "r1.yaml").write_text(R1_SPEC)
    return root


def cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def p_of(run: Path):
    return final_weights(run)["dense/kernel"].reshape(-1).tolist()


def test_r1_through_the_spec_resumed_in_a_fresh_process(r1):
    whole, part = r1 / "whole", r1 / "part"
    cli("train", r1 / "r1.yaml", "--run-dir", whole, "--init-from", r1 / "p0.safetensors")
    assert [r["learning_rate"] for r in records(whole)] == RATES
    assert p_of(whole) == pytest.approx(FINAL, abs=2e-6)  # float32, mean over the 2 outputs
    for wrong in (SCHEDULE_LOST, MOMENTS_LOST):  # the case's faults are far from it
        assert max(abs(a - b) for a, b in zip(p_of(whole), wrong)) > 5e-4
    cli("train", r1 / "r1.yaml", "--run-dir", part, "--init-from", r1 / "p0.safetensors",
        "--epochs", "3")
    _, _, state = load_checkpoint(part / "checkpoints" / "final")
    assert state["epoch"] == 3 and state["optimizer"]["learning_rate"] == 0.05
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "trainctl", "train", str(r1 / "r1.yaml"),
                           "--resume", str(part)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=r1)
    assert done.returncode == 0, done.stderr
    assert "train.epochs: 3 -> 6" in done.stdout
    assert [r["learning_rate"] for r in records(part)][3:] == [0.05, 0.025, 0.025]
    assert records(part) == records(whole)
    assert p_of(part) == p_of(whole)  # bit for bit
    assert json.loads((part / "run.json").read_text())["status"] == "completed"
