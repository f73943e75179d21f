"""Iterator state: a saved state, restored on a freshly built pipeline, yields exactly what
the uninterrupted iterator still had to yield (the oracle is that uninterrupted run)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from trainctl.data import Dataset, TensorSpec
from trainctl.data.transforms import RandomFlip
from trainctl.errors import DataError

from parallel_helpers import map_in_threads  # noqa: F401  (a fixture)

X = np.random.default_rng(0).random((45, 3)).astype(np.float32)
Y = np.arange(45)
IMAGES = np.arange(30 * 4, dtype=np.float32).reshape(30, 2, 2)


def gen():
    for i in range(23):
        yield np.full(2, i, np.int64)


PIPELINES = {
    "fast path": lambda: Dataset.from_tensor_slices((X, Y)).shuffle(45, seed=1).batch(7),
    "small buffer": lambda: Dataset.range(50).shuffle(8, seed=2).batch(4),
    "map filter shuffle": lambda: Dataset.range(60).map(lambda v: v * 3).filter(
        lambda v: v % 2 == 0).shuffle(10, seed=3).batch(3),
    "repeat indexable": lambda: Dataset.range(10).shuffle(10, seed=4).repeat(3),
    "repeat elements": lambda: Dataset.range(10).map(lambda v: v + 1).shuffle(4, seed=5).repeat(3),
    "parallel random map + prefetch": lambda: Dataset.from_tensor_slices(IMAGES).map(
        RandomFlip(mode="horizontal_and_vertical", seed=6), num_parallel_calls=3).prefetch(2),
    "interleave": lambda: Dataset.range(5).interleave(
        lambda k: Dataset.range(int(k) * 10, int(k) * 10 + 4).shuffle(4, seed=7), cycle_length=2,
        block_length=3),
    "unbatch": lambda: Dataset.from_tensor_slices(X).batch(4).unbatch(),
    "zip": lambda: Dataset.zip(Dataset.range(30).shuffle(30, seed=8), Dataset.range(100, 125)),
    "cache": lambda: Dataset.range(20).shuffle(20, seed=9).cache().batch(6),
    "generator": lambda: Dataset.from_generator(gen, TensorSpec((2,), np.dtype(np.int64))).batch(5),
    "shard take skip": lambda: Dataset.range(40).shuffle(40, seed=10).shard(3, 2).skip(1).take(9),
    "padded batch": lambda: Dataset.range(1, 12).map(lambda v: np.arange(int(v) % 4)).padded_batch(3),
}


def as_lists(elements):
    out = []
    for e in elements:
        parts = e if isinstance(e, tuple) else (e,)
        out.append(tuple(np.asarray(p).tolist() for p in parts))
    return out


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_resumed_iterator_yields_the_remaining_elements(name, map_in_threads):
    build = PIPELINES[name]
    for epoch in (0, 2):
        full = as_lists(build().iterate(epoch))
        assert len(full) > 3
        for k in (0, 1, len(full) // 2, len(full) - 1, len(full)):
            it = build().iterator(epoch)
            head = as_lists(next(it) for _ in range(k))
            state = json.loads(json.dumps(it.state()))     # JSON-able, as a checkpoint keeps it
            it.close()
            assert state["epoch"] == epoch and state["position"] == k
            rest = as_lists(build().iterator_from_state(state))
            assert head + rest == full, (name, epoch, k)


def test_iter_counts_epochs_and_its_state_resumes():
    ds = PIPELINES["fast path"]()
    next(iter(ds))                                   # epoch 0
    it = iter(ds)                                    # epoch 1
    head = as_lists([next(it), next(it)])
    state = it.state()
    assert (state["epoch"], state["position"]) == (1, 2)
    assert state["rng"] == [{"step": 1, "name": "shuffle", "seed": 1}]
    assert state["pipeline"] == ["from_tensor_slices(length=45)",
                                 "shuffle(buffer_size=45, reshuffle_each_iteration=true)",
                                 "batch(batch_size=7, drop_remainder=false)"]
    assert head + as_lists(PIPELINES["fast path"]().iterator_from_state(state)) == \
        as_lists(PIPELINES["fast path"]().iterate(1))


def test_resuming_does_not_recompute_skipped_elements_where_it_can():
    calls = Counter()

    def count(v):
        calls["n"] += 1
        return v

    ds = Dataset.range(60).map(count).batch(6)
    state = {**ds.iterator(0).state(), "position": 8}
    rest = list(ds.iterator_from_state(state))
    assert len(rest) == 2 and calls["n"] == 12       # only the two remaining batches


def test_restore_refuses_another_pipeline_or_a_bad_state():
    state = PIPELINES["fast path"]().iterator(3).state()
    other_batch = Dataset.from_tensor_slices((X, Y)).shuffle(45, seed=1).batch(8)
    with pytest.raises(DataError, match=r"another pipeline: step 2 was batch\(batch_size=7"):
        other_batch.iterator_from_state(state)
    other_seed = Dataset.from_tensor_slices((X, Y)).shuffle(45, seed=2).batch(7)
    with pytest.raises(DataError, match="random seeds"):
        other_seed.iterator_from_state(state)
    ds = PIPELINES["fast path"]()
    for bad, words in (({**state, "position": -1}, "position must be an integer"),
                       ({**state, "epoch": "3"}, "epoch must be an integer"),
                       ({**state, "format": 2}, "format 2"),
                       ({"epoch": 1}, "expected a mapping with keys"),
                       ([1, 2], "expected a mapping")):
        with pytest.raises(DataError, match=words):
            ds.iterator_from_state(bad)
