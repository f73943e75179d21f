"""The checkpoint format: files, MANIFEST (checked with hashlib and sha256sum as oracles),
safetensors-only reading, atomic writes, corruption, pickle refusal, full disk."""

from __future__ import annotations

import errno
import hashlib
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as np_load_file

from trainctl.errors import CheckpointError
from trainctl.io import checkpoint as ck
from trainctl.io import find_checkpoint, load_checkpoint, save_checkpoint
from trainctl.io.manifest import format_manifest, parse_manifest

WEIGHTS = {"dense/kernel": torch.arange(6, dtype=torch.float32).reshape(2, 3),
           "dense/bias": torch.tensor([0.5, -1.5, 2.25], dtype=torch.float32)}
SLOTS = {"dense/kernel/m": torch.full((2, 3), 0.25), "dense/bias/m": torch.zeros(3)}
META = {"format": 1, "optimizer": "adam", "iterations": 7, "learning_rate": 0.01,
        "steps": {"dense/kernel": 7}, "config": {"learning_rate": 0.01}}
STATE = {"step": 7, "epoch": 1, "data": {"epoch": 1, "batch": 3}, "note": 0.1 + 0.2}


def save(path: Path) -> Path:
    return save_checkpoint(path, WEIGHTS, (SLOTS, META), STATE)


def test_layout_and_round_trip(tmp_path):
    path = save(tmp_path / "step-000000007")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000007"]  # no temporaries
    assert sorted(p.name for p in path.iterdir()) == ["MANIFEST", "optimizer.safetensors",
                                                       "state.json", "weights.safetensors"]
    weights, slots, state = load_checkpoint(path)
    assert all(torch.equal(weights[k], v) for k, v in WEIGHTS.items()) and set(weights) == set(WEIGHTS)
    assert all(torch.equal(slots[k], v) for k, v in SLOTS.items()) and set(slots) == set(SLOTS)
    assert state["note"] == 0.30000000000000004  # floats are written exactly
    assert (state["step"], state["epoch"], state["data"]) == (7, 1, {"epoch": 1, "batch": 3})
    assert state["optimizer"] == META and state["format"] == ck.FORMAT == 2
    assert state["versions"]["torch"] == torch.__version__
    assert set(state["versions"]) == {"trainctl", "torch", "numpy", "safetensors", "python"}


def test_manifest_holds_each_files_sha256(tmp_path):
    path = save(tmp_path / "c")
    listed = parse_manifest((path / "MANIFEST").read_text())
    assert listed == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                      for p in path.iterdir() if p.name != "MANIFEST"}
    if shutil.which("sha256sum"):  # the format is GNU sha256sum's: it checks it too
        done = subprocess.run(["sha256sum", "-c", "MANIFEST"], cwd=path, capture_output=True,
                              text=True)
        assert done.returncode == 0 and done.stdout.count(": OK") == 3, done.stdout


def test_readable_with_safetensors_and_json_alone(tmp_path):
    path = save(tmp_path / "c")
    weights = np_load_file(str(path / "weights.safetensors"))
    assert np.array_equal(weights["dense/bias"], np.array([0.5, -1.5, 2.25], dtype=np.float32))
    slots = np_load_file(str(path / "optimizer.safetensors"))
    assert np.array_equal(slots["dense/kernel/m"], np.full((2, 3), 0.25, dtype=np.float32))
    assert json.loads((path / "state.json").read_text())["step"] == 7


def test_load_is_on_the_cpu_and_needs_no_device(tmp_path):
    weights, slots, _ = load_checkpoint(save(tmp_path / "c"))
    assert {t.device.type for t in [*weights.values(), *slots.values()]} == {"cpu"}


@pytest.mark.cuda
def test_saved_from_cuda_loads_on_the_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    on_gpu = {k: v.cuda() for k, v in WEIGHTS.items()}
    save_checkpoint(tmp_path / "c", on_gpu, ({k: v.cuda() for k, v in SLOTS.items()}, META), STATE)
    weights, slots, _ = load_checkpoint(tmp_path / "c")
    assert all(t.device.type == "cpu" for t in [*weights.values(), *slots.values()])
    assert torch.equal(weights["dense/kernel"], WEIGHTS["dense/kernel"])


def test_replacing_a_checkpoint_keeps_one_directory(tmp_path):
    save(tmp_path / "final")
    save_checkpoint(tmp_path / "final", {"w": torch.ones(2)}, None, {"step": 9, "epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["final"]
    weights, slots, state = load_checkpoint(tmp_path / "final")
    assert list(weights) == ["w"] and slots is None and state["step"] == 9


# ---- corruption -------------------------------------------------------------------------
def truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[:-5])


def flip_bit(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) - 3] ^= 0x01  # inside the tensor data: the file still parses
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
@pytest.mark.parametrize("name", ["weights.safetensors", "optimizer.safetensors", "state.json"])
def test_corrupt_files_are_reported(tmp_path, damage, name):
    path = save(tmp_path / "c")
    damage(path / name)
    assert ck.verify_files(path) == [f"{name}: SHA-256 mismatch (file changed, truncated or "
                                     f"corrupt; {(path / name).stat().st_size} bytes)"]
    with pytest.raises(CheckpointError, match=f"is corrupt: {name}: SHA-256 mismatch"):
        load_checkpoint(path)


def test_bit_flip_in_the_data_would_load_without_the_manifest(tmp_path):
    """The oracle that the manifest matters: safetensors alone accepts the flipped file."""
    path = save(tmp_path / "c")
    flip_bit(path / "weights.safetensors")
    flipped = np_load_file(str(path / "weights.safetensors"))
    assert set(flipped) == set(WEIGHTS)
    assert [k for k in WEIGHTS if not np.array_equal(flipped[k], WEIGHTS[k].numpy())]


def test_missing_manifest_or_file(tmp_path):
    path = save(tmp_path / "c")
    (path / "optimizer.safetensors").unlink()
    assert ck.verify_files(path) == ["optimizer.safetensors: missing"]
    (path / "MANIFEST").unlink()
    assert ck.verify_files(path) == ["MANIFEST: missing (incomplete checkpoint)"]
    (path / "MANIFEST").write_text("not a manifest\n")
    assert ck.verify_files(path)[0].startswith("MANIFEST: unreadable (line 1 is not")


def test_manifest_text_round_trip_and_errors():
    digests = {"b": "1" * 64, "a": "f" * 64}
    text = format_manifest(digests)
    assert text == f"{'f' * 64}  a\n{'1' * 64}  b\n"
    assert parse_manifest(text) == digests
    with pytest.raises(ValueError, match="listed twice"):
        parse_manifest(text + text)
    with pytest.raises(ValueError, match="line 1"):
        parse_manifest("abc  weights.safetensors\n")


def test_format_1_checkpoints_still_load(tmp_path):
    """v0 wrote no MANIFEST and a smaller state: migrated in one place."""
    path = tmp_path / "checkpoints" / "final"
    path.mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(WEIGHTS, str(path / "weights.safetensors"))
    (path / "state.json").write_text(json.dumps({"format": 1, "step": 3, "epoch": 1,
                                                 "torch": "2.0"}))
    weights, slots, state = load_checkpoint(tmp_path)  # the run-dir form needs checkpoints/
    assert state["format"] == 2 and state["versions"] == {"torch": "2.0"} and slots is None
    assert torch.equal(weights["dense/bias"], WEIGHTS["dense/bias"])
    (path / "state.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(CheckpointError, match="unknown checkpoint format 99"):
        load_checkpoint(path, verify=False)


# ---- never pickle -------------------------------------------------------------------------
class Boom:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".ckpt"])
def test_pickle_files_are_refused_and_never_run(tmp_path, suffix):
    marker = tmp_path / "ran"
    file = tmp_path / f"model{suffix}"
    if suffix == ".pt":
        torch.save({"w": torch.ones(2), "boom": Boom(str(marker))}, file)
    else:
        file.write_bytes(pickle.dumps(Boom(str(marker))))
    with pytest.raises(CheckpointError, match="refusing to load .*pickle-based"):
        load_checkpoint(file)
    with pytest.raises(CheckpointError, match="pickle-based"):
        find_checkpoint(file)
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_with_a_matching_manifest(tmp_path):
    marker = tmp_path / "ran"
    path = save(tmp_path / "c")
    (path / "weights.safetensors").write_bytes(pickle.dumps(Boom(str(marker))))
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
               for p in path.iterdir() if p.name != "MANIFEST"}
    (path / "MANIFEST").write_text(format_manifest(digests))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(path)
    assert not marker.exists()


# ---- failures while writing -------------------------------------------------------------
def disk_fills_after(monkeypatch, n_files: int, exc: BaseException):
    real = ck.write_file
    calls = []

    def write(path, data):
        calls.append(path.name)
        if len(calls) > n_files:
            with open(path, "xb") as fh:  # a partial file, as a full disk leaves it
                fh.write(data[: len(data) // 2])
            raise exc
        real(path, data)

    monkeypatch.setattr(ck, "write_file", write)
    return calls


@pytest.mark.parametrize("n_files", [0, 1, 2])  # weights, state.json, MANIFEST
def test_disk_full_leaves_nothing_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, n_files):
    save(tmp_path / "final")
    before = {p.name: p.read_bytes() for p in (tmp_path / "final").iterdir()}
    calls = disk_fills_after(monkeypatch, n_files, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(CheckpointError) as exc:
        save_checkpoint(tmp_path / "final", {"w": torch.ones(3)}, None, {"step": 99})
    assert str(exc.value) == (f"cannot write checkpoint {str(tmp_path / 'final')!r}: No space "
                              f"left on device (disk full); nothing was written")
    assert len(calls) == n_files + 1
    assert [p.name for p in tmp_path.iterdir()] == ["final"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "final").iterdir()} == before


def test_interrupt_while_writing_leaves_no_temporary(tmp_path, monkeypatch):
    disk_fills_after(monkeypatch, 1, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path / "step-000000007")
    assert list(tmp_path.iterdir()) == []


def test_fsync_failure_is_a_clear_error(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(ck.os, "fsync", fsync)
    with pytest.raises(CheckpointError, match="Input/output error; nothing was written"):
        save(tmp_path / "c")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_location_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*/file/c': File exists; nothing"):
        save(tmp_path / "file" / "c")


def test_pointer_files_are_replaced_whole(tmp_path):
    ck.write_pointer(tmp_path / "latest", "step-000000001")
    ck.write_pointer(tmp_path / "latest", "step-000000002")
    assert (tmp_path / "latest").read_text() == "step-000000002\n"
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]
    assert ck.read_pointer(tmp_path / "latest") == "step-000000002"
    (tmp_path / "best").write_text("../../etc\n")
    assert ck.read_pointer(tmp_path / "best") is None and ck.read_pointer(tmp_path / "x") is None
