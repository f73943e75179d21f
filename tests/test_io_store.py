"""A run's checkpoints folder: order, latest/best pointers, keep_last pruning after the new
checkpoint is complete, fallback over corrupt checkpoints, leftovers, check_path."""

from __future__ import annotations

import os

import pytest
import torch

from trainctl.errors import CheckpointError
from trainctl.io import CheckpointStore, check_path, step_name
from trainctl.io import checkpoint as ck
from trainctl.io import store as store_module


def put(store: CheckpointStore, step: int, **kw):
    return store.save(step_name(step), {"w": torch.full((2,), float(step))}, None,
                      {"step": step, "epoch": step // 10, "kind": "step",
                       "metrics": {"loss": 1.0 / step}}, **kw)


def names(store):
    return [e.name for e in store.entries()]


def test_names_order_and_latest(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    assert store.entries() == [] and store.pointer("latest") is None
    for step in (12, 3, 100):
        put(store, step)
    ck.save_checkpoint(store.root / "final", {"w": torch.ones(2)}, None, {"step": 100})
    assert names(store) == ["step-000000003", "step-000000012", "step-000000100", "final"]
    assert step_name(12) == "step-000000012"
    assert store.pointer("latest") == "step-000000100"  # the last written, by save()


def test_keep_last_spares_best_and_latest(tmp_path):
    store = CheckpointStore(tmp_path)
    put(store, 1, best=True)
    for step in range(2, 7):
        put(store, step, keep_last=2)
    assert names(store) == ["step-000000001", "step-000000005", "step-000000006"]
    assert (store.pointer("best"), store.pointer("latest")) == ("step-000000001", "step-000000006")
    store.set_pointer("best", "step-000000006")
    assert store.prune(2) == ["step-000000001"]
    with pytest.raises(ValueError, match="unknown pointer"):
        store.set_pointer("oldest", "x")


def test_pruning_happens_only_after_the_new_checkpoint_is_complete(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    put(store, 1)
    put(store, 2)

    def full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "write_file", full)
    with pytest.raises(CheckpointError, match="disk full"):
        put(store, 3, keep_last=1)
    assert names(store) == ["step-000000001", "step-000000002"]
    assert store.pointer("latest") == "step-000000002"
    assert list(store.iter_temporaries()) == []


def test_pruned_checkpoints_go_through_a_hidden_name(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path)
    put(store, 1)
    put(store, 2)
    seen = []
    real = store_module.shutil.rmtree

    def rmtree(path, **kw):
        seen.append(os.path.basename(path))
        real(path, **kw)

    monkeypatch.setattr(store_module.shutil, "rmtree", rmtree)
    assert store.prune(1) == ["step-000000001"]
    assert seen == [f".step-000000001.trash-{os.getpid()}"]


def test_newest_valid_skips_corrupt_ones(tmp_path):
    store = CheckpointStore(tmp_path)
    for step in (1, 2, 3):
        put(store, step)
    weights = store.root / "step-000000003" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    (store.root / "step-000000002" / "MANIFEST").unlink()
    entry, skipped = store.newest_valid()
    assert entry.name == "step-000000001" and entry.state["step"] == 1
    assert [(e.name, e.problems) for e in skipped] == [
        ("step-000000003", ["weights.safetensors: SHA-256 mismatch (file changed, truncated or "
                            f"corrupt; {weights.stat().st_size} bytes)"]),
        ("step-000000002", ["MANIFEST: missing (incomplete checkpoint)"])]


def test_temporaries_are_never_entries_and_are_cleaned(tmp_path):
    store = CheckpointStore(tmp_path)
    put(store, 1)
    (tmp_path / ".step-000000002.tmp-abc").mkdir()
    (tmp_path / ".latest.tmp-77").write_text("x")
    assert names(store) == ["step-000000001"]
    assert sorted(p.name for p in store.iter_temporaries()) == [".latest.tmp-77",
                                                               ".step-000000002.tmp-abc"]
    assert sorted(store.clean_temporaries()) == [".latest.tmp-77", ".step-000000002.tmp-abc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000000001"]


def test_check_path_on_a_run_a_folder_and_one_checkpoint(tmp_path):
    run = tmp_path / "run"
    store = CheckpointStore(run / "checkpoints")
    put(store, 1, best=True)
    put(store, 2)
    flip = store.root / "step-000000002" / "state.json"
    flip.write_text(flip.read_text().replace('"step": 2', '"step": 3'))
    result = check_path(run)
    assert not result.ok and result.pointers == {"latest": "step-000000002", "best": "step-000000001"}
    assert [(e.name, e.ok) for e in result.entries] == [("step-000000001", True),
                                                        ("step-000000002", False)]
    assert check_path(run, hash_files=False).ok  # presence only: the edit goes unseen
    assert check_path(store.root / "step-000000001").ok
    assert [e.name for e in check_path(store.root).entries] == ["step-000000001", "step-000000002"]
    store.set_pointer("best", "step-000000009")
    assert check_path(run).problems[-1] == ("pointer 'best' names 'step-000000009', which does "
                                            "not exist")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        check_path(tmp_path / "run" / "checkpoints" / "step-000000001" / ".." / ".." / "..")
    with pytest.raises(CheckpointError, match="not found"):
        check_path(tmp_path / "nope")


def test_find_checkpoint_follows_final_then_latest(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    put(store, 4)
    assert ck.find_checkpoint(tmp_path) == store.root / "step-000000004"
    assert ck.find_checkpoint(store.root / "latest") == store.root / "step-000000004"
    ck.save_checkpoint(store.root / "final", {"w": torch.ones(2)}, None, {"step": 5})
    assert ck.find_checkpoint(tmp_path) == store.root / "final"


def test_a_checkpoint_set_aside_during_a_replace_is_put_back(tmp_path):
    """Killed between 'rename the old final aside' and 'rename the new one in'."""
    store = CheckpointStore(tmp_path)
    ck.save_checkpoint(tmp_path / "final", {"w": torch.ones(2)}, None, {"step": 5})
    os.replace(tmp_path / "final", tmp_path / ".final.old-4242")
    (tmp_path / ".final.tmp-x1").mkdir()
    assert names(store) == []
    assert sorted(store.clean_temporaries()) == [".final.old-4242", ".final.tmp-x1"]
    assert names(store) == ["final"] and store.verify(store.entries()[0]).ok
