"""Resume in-process: a run of N steps equals k steps + stop + resume + N - k steps, bit for
bit (metrics.jsonl and final weights), with shuffling, dropout and a stateful learning-rate
callback; after crashes, corrupt checkpoints and a full disk (spec changes:
test_resume_spec.py)."""

from __future__ import annotations

import pytest
import torch

from resume_helpers import (STEPS_PER_EPOCH, Crash, CrashAt, StopAt, make_spec, new_run, records,
                            resume_run, same_run)
from trainctl.errors import CheckpointError
from trainctl.io import CheckpointStore, load_checkpoint


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    path = tmp_path_factory.mktemp("ref") / "run"
    new_run(path, make_spec()).fit()
    return path


def test_reference_run_is_what_the_comparison_needs(reference):
    recs = records(reference)
    assert [r["step"] for r in recs] == [9, 18, 27]
    # the decay callback changed the rate: its state matters for a resume
    assert recs[0]["learning_rate"] == pytest.approx(0.02 * 0.8)
    assert recs[-1]["learning_rate"] == pytest.approx(0.02 * 0.8 ** 5)
    names = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert names == ["final", "latest", "step-000000024", "step-000000027"]  # keep_last 2


# steps 1, 5 and 13 are mid-epoch without a periodic checkpoint at them; 9 and 18 end an
# epoch; 16 is mid-epoch on a periodic one.


@pytest.mark.parametrize("k", [1, 5, 9, 13, 16, 18, 26])
def test_stop_and_resume_is_bit_identical(tmp_path, reference, k):
    run = tmp_path / "run"
    stopped = new_run(run, make_spec(), StopAt(k))
    stopped.fit()
    assert stopped.step == k and not (run / "checkpoints" / "final").exists()
    _, _, state = load_checkpoint(run / "checkpoints" / "latest")
    assert (state["step"], state["epoch"], state["data"]["batch"]) == \
        (k, k // STEPS_PER_EPOCH, k % STEPS_PER_EPOCH)
    assert (state["epoch_progress"] is None) == (k % STEPS_PER_EPOCH == 0)
    trainer, plan, warnings = resume_run(run, make_spec())
    assert plan.entry.name == f"step-{k:09d}" and warnings == [] and plan.changes == []
    trainer.fit()
    assert same_run(run, reference)


def test_a_crash_resumes_from_the_last_periodic_checkpoint(tmp_path, reference):
    run = tmp_path / "run"
    with pytest.raises(Crash):
        new_run(run, make_spec(), CrashAt(step=15)).fit()
    assert len(records(run)) == 1
    trainer, plan, _ = resume_run(run, make_spec())
    assert plan.entry.name == "step-000000012"
    trainer.fit()
    assert same_run(run, reference)


def test_records_written_after_the_checkpoint_are_rewritten_once(tmp_path, reference):
    """A crash after epoch 2's record but before any checkpoint at its end."""
    text = make_spec().to_yaml().replace("every_epoch: true", "every_epoch: false")
    spec = make_spec(text)
    run = tmp_path / "run"
    with pytest.raises(Crash):
        new_run(run, spec, CrashAt(epoch=2)).fit()
    assert len(records(run)) == 2
    trainer, plan, _ = resume_run(run, spec)
    assert plan.entry.name == "step-000000016" and plan.state["metrics_lines"] == 1
    assert len(records(run)) == 1  # epoch 2's line will be written again by the resumed run
    trainer.fit()
    assert same_run(run, reference)


def test_a_changed_rng_state_would_show(tmp_path, reference):
    """The oracle for the test above: without the saved generator states, dropout draws
    other masks and the run differs."""
    run = tmp_path / "run"
    new_run(run, make_spec(), StopAt(13)).fit()
    trainer, _, _ = resume_run(run, make_spec())
    from trainctl.backend import manual_seed

    manual_seed(4321)  # as if the generators had not been restored
    trainer.fit()
    assert not same_run(run, reference)


def test_in_memory_trainer_state_is_untouched_by_a_failed_save(tmp_path, monkeypatch, reference):
    """Disk full at a periodic checkpoint: a clear error, nothing partial, and the trainer
    in memory can go on to the very same result once there is room again."""
    import errno

    from trainctl.io import checkpoint as ck

    run = tmp_path / "run"
    trainer = new_run(run, make_spec(), StopAt(11))
    trainer.fit()  # stopped after step 11 (checkpoints at 9 and 11 kept)
    before = {v.name: v.data.clone() for v in trainer.setup.model.variables}
    slots_before, meta_before = trainer.setup.optimizer.state_dict()
    real = ck.write_file

    def full(path, data):
        with open(path, "xb") as fh:
            fh.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "write_file", full)
    trainer.requests.clear()
    with pytest.raises(CheckpointError, match="No space left on device .disk full.; nothing was"):
        trainer.checkpointer.save("step")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "latest", "step-000000009", "step-000000011"]
    newest, skipped = CheckpointStore(run / "checkpoints").newest_valid()
    assert newest.name == "step-000000011" and skipped == []  # the old one of that name is kept
    assert all(torch.equal(before[v.name], v.data) for v in trainer.setup.model.variables)
    slots_after, meta_after = trainer.setup.optimizer.state_dict()
    assert meta_after == meta_before and all(torch.equal(slots_before[k], slots_after[k])
                                             for k in slots_before)
    monkeypatch.setattr(ck, "write_file", real)
    trainer.fit()  # the same trainer goes on from step 11
    assert same_run(run, reference)


def test_all_checkpoints_corrupt_is_an_error_and_none_starts_over(tmp_path, reference):
    run = tmp_path / "run"
    new_run(run, make_spec(), StopAt(13)).fit()
    for entry in CheckpointStore(run / "checkpoints").entries():
        (entry.path / "state.json").write_text("{}")
    with pytest.raises(CheckpointError) as exc:
        resume_run(run, make_spec())
    assert str(exc.value).splitlines() == [
        f"no valid checkpoint in {str(run)!r}; every one is corrupt:",
        "  step-000000013: state.json: SHA-256 mismatch (file changed, truncated or corrupt; "
        "2 bytes)",
        "  step-000000012: state.json: SHA-256 mismatch (file changed, truncated or corrupt; "
        "2 bytes)"]
    import shutil

    shutil.rmtree(run / "checkpoints")  # killed before its first checkpoint, one epoch logged
    trainer, plan, _ = resume_run(run, make_spec())
    assert plan.entry is None and records(run) == []
    trainer.fit()
    assert same_run(run, reference)


def test_generators_of_absent_devices_are_reported_not_fatal(tmp_path, reference):
    """A run saved on CUDA resumed on a CPU-only machine: its CUDA generator states cannot
    be restored; the resume goes on and says so."""
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    from trainctl.train.state import capture_rng, restore_rng

    rng = capture_rng()
    rng["trainctl"]["cuda:0"] = rng["trainctl"]["cpu"]
    rng["torch_cuda"] = [rng["trainctl"]["cpu"][:24]]
    assert restore_rng(rng) == [
        "the checkpoint holds 1 CUDA generator state(s) this machine cannot restore",
        "random generator 'cuda:0' not restored (no such device here): random draws (dropout) "
        "differ from the uninterrupted run"]
    assert capture_rng()["trainctl"]["cpu"] == rng["trainctl"]["cpu"]  # the CPU ones were
