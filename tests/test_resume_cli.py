"""The CLI side: ``train --resume`` / ``--resume auto`` / ``--apply-optimizer-changes``,
``--init-from`` with ``--init-filter``, ``ckpt verify`` / ``ckpt ls``, signals and a full
disk as the user sees them (in-process, Typer's runner)."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resume_helpers import SPEC, StopAt, records, same_run
from trainctl.cli.app import app
from trainctl.io import RunDir
from trainctl.io import checkpoint as ck
from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume-cli")
    (root / "tiny.yaml").write_text(SPEC)
    return root


@pytest.fixture(scope="module")
def reference(work) -> Path:
    result = invoke("train", work / "tiny.yaml", "--run-dir", work / "ref")
    assert result.exit_code == 0, result.output
    return work / "ref"


def stopped(spec_file: Path, run: Path, k: int) -> Path:
    """A run of ``spec_file`` stopped (with a checkpoint) after step ``k``."""
    setup = prepare(load_spec(spec_file))
    stop = StopAt(k)
    stop.trainer = Trainer(setup, RunDir(run).create(setup.resolved_yaml()), [stop])
    stop.trainer.fit()
    return run


def test_resume_continues_to_the_same_run(work, reference, tmp_path):
    run = stopped(work / "tiny.yaml", tmp_path / "run", 13)
    result = invoke("train", work / "tiny.yaml", "--resume", run)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (f"resuming {run} from step-000000013 (step 13, "
                                             f"epoch 2, batch 4 of 9)")
    assert f"run written to {run}" in result.stdout
    assert same_run(run, reference)
    again = invoke("train", work / "tiny.yaml", "--resume", run)
    assert "the run is already complete (3 epochs): nothing to train" in again.stdout
    assert again.stdout.splitlines()[0] == f"resuming {run} from final (step 27, after epoch 3)"
    assert same_run(run, reference)


def test_a_corrupt_newest_checkpoint_is_reported_and_skipped(work, reference, tmp_path):
    run = stopped(work / "tiny.yaml", tmp_path / "run", 13)  # keeps step 12 and 13
    weights = run / "checkpoints" / "step-000000013" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x10
    weights.write_bytes(bytes(data))
    verify = invoke("ckpt", "verify", run)
    assert verify.exit_code == 1
    assert verify.stdout.splitlines() == [
        "ok       step-000000012  step 12",
        "CORRUPT  step-000000013: weights.safetensors: SHA-256 mismatch (file changed, "
        f"truncated or corrupt; {len(data)} bytes)",
        "2 checkpoint(s), 1 corrupt"]
    result = invoke("train", work / "tiny.yaml", "--resume", run)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0].startswith(
        "warning: checkpoint step-000000013 is corrupt (weights.safetensors: SHA-256 mismatch")
    assert "from step-000000012 (step 12," in result.stdout
    assert same_run(run, reference)


def test_incompatible_change_is_refused_with_the_list(work, tmp_path):
    run = stopped(work / "tiny.yaml", tmp_path / "run", 5)
    changed = tmp_path / "changed.yaml"
    changed.write_text(SPEC.replace("units: 8", "units: 9").replace("type: adam", "type: sgd"))
    before = (run / "metrics.jsonl").read_bytes(), (run / "spec.yaml").read_bytes()
    result = invoke("train", changed, "--resume", run)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[1:3] == ["  model.layers[0].units: 8 -> 9",
                                               "  optimizer.type: 'adam' -> 'sgd'"]
    assert ((run / "metrics.jsonl").read_bytes(), (run / "spec.yaml").read_bytes()) == before


def test_learning_rate_change_only_with_the_flag(work, tmp_path):
    run = stopped(work / "tiny.yaml", tmp_path / "run", 5)
    changed = tmp_path / "lr.yaml"
    changed.write_text(SPEC.replace("learning_rate: 0.02", "learning_rate: 0.001")
                       .replace("epochs: 3", "epochs: 2"))
    refused = invoke("train", changed, "--resume", run)
    assert refused.exit_code == 2
    assert "optimizer.learning_rate: 0.02 -> 0.001" in refused.stderr
    assert "--apply-optimizer-changes" in refused.stderr
    result = invoke("train", changed, "--resume", run, "--apply-optimizer-changes")
    assert result.exit_code == 0, result.output
    assert "spec changes since the checkpoint (safe): train.epochs: 3 -> 2" in result.stdout
    assert ("applying optimizer changes (--apply-optimizer-changes): optimizer.learning_rate: "
            "0.02 -> 0.001") in result.stdout
    assert [r["learning_rate"] for r in records(run)] == [0.001, 0.001]
    assert "learning_rate: 0.001" in (run / "spec.yaml").read_text()  # the spec it went on with


def test_resume_auto_picks_the_latest_run_of_the_spec(work, reference, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = invoke("train", work / "tiny.yaml", "--resume", "auto", "--epochs", "1")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("no earlier run of 'tiny-resume' under runs/: starting a new one")
    (run,) = (tmp_path / "runs").iterdir()
    other = tmp_path / "runs" / "other"
    other.mkdir()
    (other / "spec.yaml").write_text("name: something-else\n")
    result = invoke("train", work / "tiny.yaml", "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"resuming {Path('runs') / run.name} from final (step 9,")
    assert "spec changes since the checkpoint (safe): train.epochs: 1 -> 3" in result.stdout
    assert same_run(run, reference)


def test_resume_auto_with_a_run_dir_and_conflicts(work, tmp_path):
    fresh = invoke("train", work / "tiny.yaml", "--run-dir", tmp_path / "r", "--resume", "auto",
                   "--epochs", "1")
    assert fresh.exit_code == 0 and fresh.stdout.startswith(f"no run in {tmp_path / 'r'} yet")
    both = invoke("train", work / "tiny.yaml", "--resume", tmp_path / "r", "--init-from",
                  tmp_path / "r")
    assert both.exit_code == 2 and "give one" in both.stderr
    other = invoke("train", work / "tiny.yaml", "--resume", tmp_path / "r", "--run-dir",
                   tmp_path / "s")
    assert other.exit_code == 2 and "name different runs" in other.stderr
    missing = invoke("train", work / "tiny.yaml", "--resume", tmp_path / "nope")
    assert missing.exit_code == 2 and "not a run directory" in missing.stderr
    lone = invoke("train", work / "tiny.yaml", "--init-filter", "dense/*")
    assert lone.exit_code == 2 and "--init-from, which is missing" in lone.stderr
    flag = invoke("train", work / "tiny.yaml", "--apply-optimizer-changes")
    assert flag.exit_code == 2 and "only with --resume" in flag.stderr


def test_init_from_reports_each_tensor_and_filters(work, reference, tmp_path):
    wider = tmp_path / "wider.yaml"
    head = "    - {type: dense, units: 1}\n"
    assert SPEC.count(head) == 1
    wider.write_text(SPEC.replace(head, "    - {type: dense, units: 5, activation: relu}\n"
                                        "    - {type: dense, units: 1, name: head}\n"))
    result = invoke("train", wider, "--run-dir", tmp_path / "w", "--init-from", reference,
                    "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:7] == [
        f"initialised from {reference}: 2 loaded, 2 missing, 2 other shape",
        "  loaded       dense/kernel  [2,8]",
        "  loaded       dense/bias  [8]",
        "  other shape  dense_1/kernel  checkpoint [8,1], model [8,5]; kept as initialised",
        "  other shape  dense_1/bias  checkpoint [1], model [5]; kept as initialised",
        "  missing      head/kernel  not in the checkpoint; kept as initialised",
        "  missing      head/bias  not in the checkpoint; kept as initialised"]
    filtered = invoke("train", work / "tiny.yaml", "--run-dir", tmp_path / "f", "--init-from",
                      reference / "checkpoints" / "final", "--init-filter", "dense_1/*",
                      "--epochs", "1")
    assert filtered.exit_code == 0, filtered.output
    assert filtered.stdout.splitlines()[:5] == [
        f"initialised from {reference / 'checkpoints' / 'final'}: 2 loaded, 2 filtered out",
        "  filtered out dense/kernel  not selected by the filter",
        "  filtered out dense/bias  not selected by the filter",
        "  loaded       dense_1/kernel  [8,1]", "  loaded       dense_1/bias  [1]"]
    typo = invoke("train", work / "tiny.yaml", "--run-dir", tmp_path / "t", "--init-from",
                  reference, "--init-filter", "dens/*")
    assert typo.exit_code == 2 and "--init-filter 'dens/*' matches no tensor" in typo.stderr
    assert not (tmp_path / "t").exists()


def test_init_from_copies_the_weights(work, reference):
    from resume_helpers import final_weights
    from trainctl.train.init_from import init_from

    setup = prepare(load_spec(work / "tiny.yaml"))
    report = init_from(setup.model, reference)
    want = final_weights(reference)
    assert report.count("loaded") == 4 and want.keys() == setup.model.state_dict().keys()
    assert all(v.data.equal(want[v.name]) for v in setup.model.variables)


def test_init_from_refuses_pickle(work, tmp_path):
    import torch

    torch.save({"dense/kernel": torch.zeros(2, 8)}, tmp_path / "model.pt")
    result = invoke("train", work / "tiny.yaml", "--run-dir", tmp_path / "p", "--init-from",
                    tmp_path / "model.pt")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: refusing to load {str(tmp_path / 'model.pt')!r}: it "
                                    f"is a pickle-based file")


def test_ckpt_ls_lists_step_metrics_size_and_pointers(reference):
    result = invoke("ckpt", "ls", reference, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["checkpoints"]
    assert [(r["name"], r["step"], r["epoch"], r["kind"], r["pointers"]) for r in rows] == [
        ("step-000000024", 24, 2, "step", []), ("step-000000027", 27, 3, "epoch", []),
        ("final", 27, 3, "final", ["latest"])]
    for row in rows:
        folder = reference / "checkpoints" / row["name"]
        assert row["bytes"] == sum(f.stat().st_size for f in folder.iterdir())
    assert rows[-1]["metrics"] == records(reference)[-1] | {"seconds": rows[-1]["metrics"]["seconds"]}
    table = invoke("ckpt", "ls", reference)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["checkpoint", "step", "epoch", "kind", "size", "metrics"]
    (final,) = [line.split() for line in lines if line.startswith("final ")]
    kib = rows[-1]["bytes"] / 1024
    assert final[:8] == ["final", "27", "3", "final", f"{kib:.1f}", "KiB", "latest", "accuracy"]


def test_ckpt_verify_single_checkpoint_json_and_errors(reference, tmp_path):
    ok = invoke("ckpt", "verify", reference / "checkpoints" / "final", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    missing = invoke("ckpt", "verify", tmp_path / "none")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ")
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04K\x01.")
    assert invoke("ckpt", "verify", tmp_path / "m.pkl").exit_code == 2


def _signal_at_write(monkeypatch, plan: dict[int, int]):
    """Send signals from inside checkpoint writes: ``{write number: signal}``."""
    real, count = ck.write_file, [0]

    def write(path, data):
        count[0] += 1
        if count[0] in plan:
            os.kill(os.getpid(), plan[count[0]])
        real(path, data)

    monkeypatch.setattr(ck, "write_file", write)


def test_sigterm_stops_with_143_and_says_how_to_resume(work, reference, tmp_path, monkeypatch):
    _signal_at_write(monkeypatch, {5: signal.SIGTERM})  # during the second checkpoint (step 8)
    run = tmp_path / "run"
    result = invoke("train", work / "tiny.yaml", "--run-dir", run)
    assert result.exit_code == 143
    assert result.stderr.splitlines() == [
        f"stopped by SIGTERM after step 8; checkpoint {run / 'checkpoints' / 'step-000000008'}",
        f"resume with: trainctl train {work / 'tiny.yaml'} --resume {run}"]
    monkeypatch.undo()
    assert invoke("train", work / "tiny.yaml", "--resume", run).exit_code == 0
    assert same_run(run, reference)


def test_the_resume_hint_repeats_the_flags_that_shaped_the_run(work, tmp_path, monkeypatch):
    spec = tmp_path / "my spec.yaml"  # a space: the hint quotes it
    spec.write_text((work / "tiny.yaml").read_text())
    flags = ["--seed", "7", "--epochs", "4", "--set", "optimizer.learning_rate=0.01"]
    ref = tmp_path / "ref"
    assert invoke("train", spec, "--run-dir", ref, *flags).exit_code == 0
    _signal_at_write(monkeypatch, {5: signal.SIGTERM})
    run = tmp_path / "run"
    result = invoke("train", spec, "--run-dir", run, *flags)
    assert result.exit_code == 143
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("resume with: trainctl train '")
    argv = shlex.split(hint.removeprefix("resume with: "))
    assert argv == ["trainctl", "train", str(spec), "--resume", str(run), *flags]
    monkeypatch.undo()
    refused = invoke("train", spec, "--resume", run)  # the flags matter: without them, refused
    assert refused.exit_code == 2 and refused.stderr.startswith("error: ")
    assert invoke(*argv[1:]).exit_code == 0  # the hint, as printed, resumes the same run
    assert same_run(run, ref)


def test_second_sigint_exits_130_at_once(work, tmp_path, monkeypatch):
    _signal_at_write(monkeypatch, {5: signal.SIGINT, 7: signal.SIGINT})
    run = tmp_path / "run"
    result = invoke("train", work / "tiny.yaml", "--run-dir", run)
    assert result.exit_code == 130
    assert result.stderr.splitlines()[0] == (
        f"second SIGINT: exited at once, without a checkpoint of the step in progress; the last "
        f"checkpoint is {run / 'checkpoints' / 'step-000000004'}")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000004"]


def test_disk_full_is_one_clear_line_and_leaves_no_partial_checkpoint(work, tmp_path, monkeypatch):
    real, count = ck.write_file, [0]

    def write(path, data):
        count[0] += 1
        if count[0] > 4:  # the first checkpoint fits, the second does not
            with open(path, "xb") as fh:
                fh.write(data[:7])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(ck, "write_file", write)
    run = tmp_path / "run"
    result = invoke("train", work / "tiny.yaml", "--run-dir", run)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: cannot write checkpoint {str(run / 'checkpoints' / 'step-000000008')!r}: No space "
        f"left on device (disk full); nothing was written"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000004"]
