"""What a run directory records: metrics.csv and TensorBoard event files hold the records of
metrics.jsonl (read back with TensorBoard's own reader), they follow a resume's truncation,
and run.json tells status, times, versions, device, spec hash, data fingerprint and git."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.io import RunDir
from trainctl.io.records import finish_run, git_commit, read_run, start_run

SPEC = """\
name: rec
seed: 0
data:
  source: {type: iris}
  split: {validation: 0.2, test: 0.2}
  batch_size: 16
  standardize: true
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy, {type: f1, average: macro}]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 3, log_every_n_steps: 2}
"""


def train(spec: Path, run: Path, *args: str):
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(run), *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("rec")
    (work / "s.yaml").write_text(SPEC)
    train(work / "s.yaml", work / "run", "-q")
    return work / "run"


def jsonl(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_metrics_csv_holds_the_jsonl_records_under_the_union_of_their_keys(run):
    records = jsonl(run)
    assert {r["kind"] for r in records} == {"step", "epoch"}  # both kinds are there
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    union = []
    for r in records:
        union += [k for k in r if k not in union]
    assert header == union and len(body) == len(records)
    for record, row in zip(records, body):
        for key, cell in zip(header, row):
            value = record.get(key)
            if value is None:
                assert cell == ""
            elif isinstance(value, float):
                assert float(cell) == value  # repr: every digit kept
            else:
                assert cell == str(value)


def _scalars(folder: Path) -> dict[str, list]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def test_tensorboard_events_read_back_with_tensorboards_reader(run):
    records = jsonl(run)
    train_tb = _scalars(run / "tensorboard" / "train")
    val_tb = _scalars(run / "tensorboard" / "validation")
    for kind in ("epoch", "step"):
        rows = [r for r in records if r["kind"] == kind]
        for key in ("loss", "accuracy", "f1"):
            events = train_tb[f"{kind}/{key}"]
            assert [e.step for e in events] == [r["step"] for r in rows]
            assert [e.value for e in events] == pytest.approx([r[key] for r in rows], rel=1e-6)
    epochs = [r for r in records if r["kind"] == "epoch"]
    events = val_tb["epoch/loss"]  # val_loss, drawn in the same chart as the train loss
    assert [e.step for e in events] == [r["step"] for r in epochs]
    assert [e.value for e in events] == pytest.approx([r["val_loss"] for r in epochs], rel=1e-6)
    assert "epoch/learning_rate" in train_tb and "epoch/val_loss" not in train_tb


def test_run_json(run):
    info = read_run(run)
    assert info["status"] == "completed" and info["end_time"] >= info["start_time"]
    assert info["duration_seconds"] > 0 and info["device"] == "cpu" and info["name"] == "rec"
    import torch

    import trainctl

    assert info["versions"]["torch"] == torch.__version__
    assert info["versions"]["trainctl"] == trainctl.__version__
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert info["spec_sha256"] == state["spec_sha256"]
    assert info["data"]["sizes"] == {"train": 90, "validation": 30, "test": 30}
    assert [a["shape"] for a in info["data"]["arrays"]] == [[90, 4], [90]]


def test_data_fingerprint_is_the_hash_of_the_training_arrays(tmp_path):
    from trainctl.data import plan_data
    from trainctl.data.facts import fingerprint
    from trainctl.spec import load_spec

    (tmp_path / "s.yaml").write_text(SPEC.replace("standardize: true", "shuffle: false"))
    spec = load_spec(tmp_path / "s.yaml")
    splits = plan_data(spec.data, spec.doc).load(spec.seed)
    batches = list(splits.train)  # not shuffled: the batches are the arrays, in order
    digest = hashlib.sha256()
    for a in (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])):
        digest.update(f"{a.dtype.str}{a.shape}".encode())  # the documented formula
        digest.update(np.ascontiguousarray(a).tobytes())
    got = fingerprint(splits.train)
    assert got == {"sha256": digest.hexdigest(),
                   "arrays": [{"shape": [90, 4], "dtype": "float32"},
                              {"shape": [90], "dtype": "int64"}]}
    assert fingerprint(plan_data(spec.data, spec.doc).load(spec.seed).train) == got
    assert fingerprint(plan_data(spec.data, spec.doc).load(1).train)["sha256"] != got["sha256"]


def test_git_commit_of_the_spec_work_tree(tmp_path):
    spec = tmp_path / "repo" / "s.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    assert git_commit(spec) is None or git_commit(spec)["commit"]  # outside: none (or a parent)
    env = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", str(spec.parent)], check=True)
    subprocess.run(["git", *env, "-C", str(spec.parent), "add", "s.yaml"], check=True)
    subprocess.run(["git", *env, "-C", str(spec.parent), "commit", "-qm", "x"], check=True)
    head = subprocess.run(["git", "-C", str(spec.parent), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert git_commit(spec) == {"commit": head, "dirty": False}
    spec.write_text(SPEC + "# changed\n")
    assert git_commit(spec) == {"commit": head, "dirty": True}
    train(spec, tmp_path / "run", "-q", "--epochs", "1")
    assert read_run(tmp_path / "run")["git"] == {"commit": head, "dirty": True}


def test_status_and_times_across_a_failure_and_a_resume(tmp_path):
    import time

    start = start_run(tmp_path, {"device": "cpu"})
    assert read_run(tmp_path)["status"] == "running" and read_run(tmp_path)["end_time"] is None
    time.sleep(0.05)
    failed = finish_run(tmp_path, "failed", start, error="RuntimeError: boom")
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: boom"
    assert failed["duration_seconds"] >= 0.05
    again = start_run(tmp_path, {"device": "cpu"})
    resumed = read_run(tmp_path)
    assert resumed["status"] == "running" and resumed["start_time"] == failed["start_time"]
    assert len(resumed["resumed"]) == 1
    done = finish_run(tmp_path, "completed", again)
    assert done["duration_seconds"] >= failed["duration_seconds"]  # the two runs added up
    with pytest.raises(ValueError, match="run status must be one of"):
        finish_run(tmp_path, "done", again)


def test_csv_and_events_follow_a_truncation(tmp_path):
    rd = RunDir(tmp_path / "r").create("name: x\n")
    for step in (1, 2, 3):
        rd.append_metrics({"kind": "epoch", "epoch": step, "step": step * 10, "loss": 1.0 / step})
    rd.truncate_metrics(2)  # a resume from the checkpoint of epoch 2
    rd.append_metrics({"kind": "epoch", "epoch": 3, "step": 30, "loss": 0.25, "extra": math.nan})
    rd.close()
    rows = list(csv.reader(open(tmp_path / "r" / "metrics.csv", newline="")))
    assert rows == [["kind", "epoch", "step", "loss", "extra"], ["epoch", "1", "10", "1.0", ""],
                    ["epoch", "2", "20", "0.5", ""], ["epoch", "3", "30", "0.25", ""]]
    events = _scalars(tmp_path / "r" / "tensorboard" / "train")["epoch/loss"]
    assert [(e.step, e.value) for e in events] == [(10, 1.0), (20, 0.5), (30, 0.25)]
    reopened = RunDir.open(tmp_path / "r")  # another process goes on: rebuilt, then appended
    reopened.append_metrics({"kind": "epoch", "epoch": 4, "step": 40, "loss": 0.2})
    reopened.close()
    assert len(list(csv.reader(open(tmp_path / "r" / "metrics.csv")))) == 5
    events = _scalars(tmp_path / "r" / "tensorboard" / "train")["epoch/loss"]
    assert [e.step for e in events] == [10, 20, 30, 40]
