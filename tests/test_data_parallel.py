"""Parallel map hands out chunks of elements: the results, their order, the random draws,
the error position and the resumed tail are those of the serial map (the oracle)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from trainctl.data import Dataset
from trainctl.data.parallel import ChunkSizer, Map
from trainctl.data.transforms import RandomFlip
from trainctl.errors import DataError

from parallel_helpers import map_in_threads  # noqa: F401  (a fixture)


def _map_threads() -> int:
    return sum(t.name.startswith("trainctl-map") and t.is_alive() for t in threading.enumerate())


def test_chunk_sizer_aims_at_the_target_work_per_chunk():
    sizer = ChunkSizer(target=0.002, largest=256)
    assert sizer.size() == 1                       # nothing measured yet
    sizer.record(0.001, 10)                        # 100 µs per element → 20 per 2 ms
    assert sizer.size() == 20
    for _ in range(50):
        sizer.record(1e-7 * 100, 100)              # 0.1 µs per element: capped
    assert sizer.size() == 256
    for _ in range(50):
        sizer.record(0.01, 1)                      # 10 ms per element: one at a time
    assert sizer.size() == 1


def test_a_fast_function_is_handed_out_in_chunks(monkeypatch, map_in_threads):
    calls = []
    original = Map._apply_chunk

    def counting(self, chunk, key, first, sizer, probe):
        calls.append(len(chunk))
        return original(self, chunk, key, first, sizer, probe)

    monkeypatch.setattr(Map, "_apply_chunk", counting)
    out = [int(v) for v in Dataset.range(5000).map(lambda v: v + 1, num_parallel_calls=2)]
    assert out == list(range(1, 5001))
    assert sum(calls) == 5000 - 3 and max(calls) > 1   # after 3 timed in the caller
    assert len(calls) < 5000 / 4                   # not one hand-off per element


def test_parallel_random_map_equals_serial_and_resumes_mid_chunk(map_in_threads):
    images = np.arange(3000 * 6, dtype=np.float32).reshape(3000, 2, 3)

    def pipeline(calls):
        flip = RandomFlip(mode="horizontal_and_vertical", seed=11)
        return Dataset.from_tensor_slices(images).map(flip, num_parallel_calls=calls)

    serial = [a.tolist() for a in pipeline(None).iterate(2)]
    for calls in (2, 3):
        assert [a.tolist() for a in pipeline(calls).iterate(2)] == serial
    it = pipeline(2).iterate(2)
    for _ in range(1234):
        next(it)
    state = it.state()
    it.close()
    resumed = pipeline(2).iterator_from_state(state)
    assert [a.tolist() for a in resumed] == serial[1234:]
    assert _map_threads() == 0


def test_error_inside_a_chunk_yields_what_came_before_then_raises_with_the_index(map_in_threads):
    def fail_at(v):
        if v == 2500:
            raise KeyError("missing")
        return v * 3

    got = []
    with pytest.raises(DataError, match=r"map: element 2500 \(epoch 1\): KeyError") as info:
        for v in Dataset.range(4000).map(fail_at, num_parallel_calls=2).iterate(1):
            got.append(int(v))
    assert got == [3 * v for v in range(2500)]
    assert isinstance(info.value.__cause__, KeyError)
    assert _map_threads() == 0
