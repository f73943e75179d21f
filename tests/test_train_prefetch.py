"""The trainer takes its batches through prefetch_to_device: made ahead in a background
thread, the same batches (the oracle: plain ``Dataset.iterate``), no thread left behind,
a stop mid-epoch resumes bit for bit (the oracle: an uninterrupted run)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from resume_helpers import StopAt, make_spec, new_run, resume_run, same_run
from trainctl.autodiff.tensor import Tensor
from trainctl.data import Dataset
from trainctl.train import Callback
from trainctl.train import loop
from trainctl.train.loop import device_batches


def _prefetch_threads() -> int:
    return sum(t.name == "trainctl-prefetch" and t.is_alive() for t in threading.enumerate())


def test_device_batches_are_the_datasets_batches_from_a_position_made_ahead(monkeypatch):
    monkeypatch.setattr(loop, "PREFETCH_BATCHES", 2)      # 4 batches left: the thread waits
    x = np.random.default_rng(1).random((50, 3)).astype(np.float32)
    y = np.arange(50)
    ds = Dataset.from_tensor_slices((x, y)).shuffle(50, seed=4).batch(8)
    want = list(ds.iterate(2, position=3))
    got = device_batches(ds, torch.device("cpu"), 2, 3)
    first = next(got)
    assert _prefetch_threads() == 1                      # a background thread makes them
    batches = [first, *got]
    assert len(batches) == len(want) == 4
    for (tx, ty), (nx, ny) in zip(batches, want):
        assert isinstance(tx, Tensor) and tx.data.device.type == "cpu"
        np.testing.assert_array_equal(tx.data.numpy(), nx)
        np.testing.assert_array_equal(ty.data.numpy(), ny)
    assert _prefetch_threads() == 0
    stopped = device_batches(ds, torch.device("cpu"), 0)
    next(stopped)
    stopped.close()                                      # an early stop ends the thread
    assert _prefetch_threads() == 0


class Seen(Callback):
    """Records whether a prefetch thread was running during each step."""

    def __init__(self):
        self.running = []

    def on_batch_end(self, step, batch_size, loss):
        self.running.append(_prefetch_threads())


def test_training_prefetches_and_a_stop_mid_epoch_resumes_bit_for_bit(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "PREFETCH_BATCHES", 2)      # < the 9 batches of an epoch
    spec = make_spec()
    seen = Seen()
    whole = new_run(tmp_path / "whole", spec, seen)
    whole.fit()
    assert len(seen.running) == 27
    early = [n for i, n in enumerate(seen.running) if i % 9 < 5]   # the thread is 2 ahead
    assert early == [1] * 15                                # batches came from the thread
    assert _prefetch_threads() == 0                         # none left after fit
    stopped = new_run(tmp_path / "parts", spec, StopAt(13))  # mid-epoch 2 (9 steps/epoch)
    stopped.fit()
    assert (stopped.step, stopped.epoch, stopped.batch) == (13, 1, 4)
    assert _prefetch_threads() == 0                         # the stop closed the thread
    trainer, _, _ = resume_run(tmp_path / "parts", spec)
    trainer.fit()
    assert same_run(tmp_path / "whole", tmp_path / "parts")


@pytest.mark.cuda
def test_device_batches_on_cuda_are_pinned_copies_with_the_same_values():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = np.random.default_rng(0).random((40, 5)).astype(np.float32)
    ds = Dataset.from_tensor_slices((x, np.arange(40))).batch(16)
    got = list(device_batches(ds, torch.device("cuda"), 0))
    assert all(tx.data.device.type == "cuda" and ty.data.device.type == "cuda" for tx, ty in got)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(torch.cat([tx.data for tx, _ in got]).cpu().numpy(), x)
    assert _prefetch_threads() == 0
