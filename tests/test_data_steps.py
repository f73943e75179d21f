"""Dataset transformations with tf.data semantics. Expected values come from tf.data's
documented examples, closed forms (the shuffle buffer's survival law) or plain numpy."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest

from trainctl.data import AUTOTUNE, Dataset, TensorSpec
from trainctl.data.transforms import RandomFlip
from trainctl.errors import DataError

from parallel_helpers import map_in_threads  # noqa: F401  (a fixture)


def ints(ds, epoch=0):
    return [int(v) for v in ds.iterate(epoch)]


def tolist(ds, epoch=0):
    return [np.asarray(v).tolist() if not isinstance(v, tuple) else
            tuple(np.asarray(a).tolist() for a in v) for v in ds.iterate(epoch)]


# -- determinism --------------------------------------------------------------------------

def augmented(calls, depth):
    images = np.arange(40 * 6, dtype=np.float32).reshape(40, 2, 3)
    ds = Dataset.from_tensor_slices((images, np.arange(40)))
    ds = ds.map(RandomFlip(mode="horizontal_and_vertical", seed=5), num_parallel_calls=calls)
    ds = ds.shuffle(7, seed=9).map(lambda x, y: (x * 2, y), num_parallel_calls=calls)
    ds = ds.batch(6)
    return ds.prefetch(depth) if depth else ds


def test_same_seed_same_order_whatever_parallelism_or_prefetch_depth(map_in_threads):
    reference = [tolist(augmented(None, 0), e) for e in range(3)]
    assert reference[0] != reference[1]                    # reshuffled and re-augmented
    for calls in (1, 2, 4, AUTOTUNE):
        for depth in (0, 1, 3):
            assert [tolist(augmented(calls, depth), e) for e in range(3)] == reference, (calls, depth)


def test_fast_index_path_equals_the_element_path():
    x = np.random.default_rng(0).random((53, 3)).astype(np.float32)
    y = np.arange(53)
    builds = [
        lambda d: d.shuffle(53, seed=1).batch(8),
        lambda d: d.shuffle(10, seed=2).batch(8, drop_remainder=True),
        lambda d: d.skip(3).shuffle(100, seed=3).take(40).batch(7),
        lambda d: d.shard(3, 1).repeat(2).batch(5),
        lambda d: d.shuffle(53, seed=4).repeat(3).batch(16),
    ]
    for build in builds:
        fast = build(Dataset.from_tensor_slices((x, y)))
        slow = build(Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a, b)))
        for epoch in (0, 1):
            a, b = list(fast.iterate(epoch)), list(slow.iterate(epoch))
            assert len(a) == len(b) > 0
            for (xa, ya), (xb, yb) in zip(a, b):
                np.testing.assert_array_equal(xa, xb)
                np.testing.assert_array_equal(ya, yb)
                assert xa.flags.writeable and xa.base is not x      # fresh arrays


def test_batchable_transforms_keep_the_index_path_with_the_same_values():
    from trainctl.data.transforms import Normalize, OneHot

    x = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    y = np.arange(40) % 4
    norm, hot = Normalize(), OneHot(depth=4)
    norm.fit(x, None)

    def build(d):
        return d.map(norm).shuffle(40, seed=5).map(hot).batch(6)

    fast = build(Dataset.from_tensor_slices((x, y)))
    slow = build(Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a, b)))
    assert fast.input._index_root() is not None and slow.input._index_root() is None
    for (xa, ya), (xb, yb) in zip(fast.iterate(1), slow.iterate(1)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert ya.shape == (4, 4)


# -- shuffle ------------------------------------------------------------------------------

def test_small_buffer_mixes_as_tf_data_survival_law():
    # element 0 enters the buffer first and is drawn with probability 1/B at each output,
    # so P(element 0 comes out at position >= t) = (1 - 1/B)**t while input remains
    b, n, t, epochs = 10, 100, 20, 3000
    ds = Dataset.range(n).shuffle(b, seed=13)
    late = 0
    for epoch in range(epochs):
        order = ints(ds, epoch)
        assert sorted(order) == list(range(n))              # a permutation every epoch
        late += order.index(0) >= t
    expected = (1 - 1 / b) ** t
    assert abs(late / epochs - expected) < 5 * np.sqrt(expected * (1 - expected) / epochs)


def test_small_buffer_reaches_the_end_of_the_epoch_and_reshuffles():
    ds = Dataset.range(1000).shuffle(64, seed=3)
    orders = [ints(ds, e) for e in range(4)]
    for order in orders:
        assert sorted(order) == list(range(1000))
        assert max(order[:64]) < 64 + 64             # moves forward at most buffer_size - 1
        assert min(order[-100:]) < 900               # but early elements can come out late
    assert len({tuple(o) for o in orders}) == 4


def test_shuffled_batches_are_a_permutation_each_epoch():
    ds = Dataset.from_tensor_slices(np.arange(1000)).shuffle(1000, seed=0).batch(64)
    seen = [np.concatenate(list(ds.iterate(e))) for e in range(3)]
    for order in seen:
        assert sorted(order.tolist()) == list(range(1000))
    assert not np.array_equal(seen[0], seen[1])


# -- shard --------------------------------------------------------------------------------

@pytest.mark.parametrize("indexable", [True, False])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 20])
def test_shards_cover_every_element_exactly_once(n, indexable):
    base = Dataset.range(17) if indexable else Dataset.range(17).filter(lambda v: True)
    shards = [ints(base.shuffle(17, seed=1).shard(n, i)) for i in range(n)]
    assert sorted(sum(shards, [])) == list(range(17))
    assert [len(s) for s in shards] == [base.shard(n, i).cardinality() if indexable else
                                        len(range(i, 17, n)) for i in range(n)]
    with pytest.raises(DataError, match="index must be < num_shards"):
        base.shard(n, n)


# -- parallel map -------------------------------------------------------------------------

def _map_threads() -> int:
    return sum(t.name.startswith("trainctl-map") and t.is_alive() for t in threading.enumerate())


def test_parallel_map_error_is_raised_in_the_caller_with_the_index_and_stops_workers(map_in_threads):
    def fail_at_37(v):
        if v == 37:
            raise ValueError("bad element")
        time.sleep(0.001)
        return v * 2

    got = []
    it = iter(Dataset.range(200).map(fail_at_37, num_parallel_calls=4))
    with pytest.raises(DataError, match=r"map: element 37 \(epoch 0\): ValueError: bad element") as info:
        for v in it:
            got.append(int(v))
    assert got == [2 * v for v in range(37)]                   # everything before, in order
    assert isinstance(info.value.__cause__, ValueError)
    assert _map_threads() == 0                                # no worker left running
    stopped = iter(Dataset.range(10_000).map(lambda v: v, num_parallel_calls=3))
    next(stopped)
    stopped.close()
    assert _map_threads() == 0


def test_parallel_map_keeps_order_with_uneven_work(map_in_threads):
    def slow_evens(v):
        time.sleep(0.002 if int(v) % 2 == 0 else 0)
        return v

    assert ints(Dataset.range(60).map(slow_evens, num_parallel_calls=6)) == list(range(60))
    with pytest.raises(DataError, match="num_parallel_calls"):
        Dataset.range(3).map(lambda v: v, num_parallel_calls=0)


# -- batching variants --------------------------------------------------------------------

def test_padded_batch_tf_example():
    # tf.data docs: A = range(1, 5).map(lambda x: fill([x], x)); A.padded_batch(2)
    ds = Dataset.range(1, 5).map(lambda x: np.full([int(x)], x)).padded_batch(2)
    assert tolist(ds) == [[[1, 0], [2, 2]], [[3, 3, 3, 0], [4, 4, 4, 4]]]
    assert ds.element_spec == TensorSpec((None, None), np.dtype(np.int64))
    fixed = Dataset.range(1, 4).map(lambda x: np.full([int(x)], x)).padded_batch(
        2, padded_shapes=[5], padding_values=-1)
    assert tolist(fixed) == [[[1, -1, -1, -1, -1], [2, 2, -1, -1, -1]], [[3, 3, 3, -1, -1]]]
    with pytest.raises(DataError, match="more than its padded size 2"):
        list(Dataset.range(1, 4).map(lambda x: np.full([int(x)], x)).padded_batch(3, [2]))


def test_unbatch_inverts_batch_and_strings_pad():
    x = np.arange(14).reshape(7, 2)
    again = Dataset.from_tensor_slices(x).batch(3).unbatch()
    assert tolist(again) == x.tolist()
    assert again.element_spec == TensorSpec((2,), x.dtype)
    words = Dataset.from_tensor_slices(np.array(["a", "bb", "c"]))
    pairs = words.map(lambda w: np.array(list(str(w)))).padded_batch(3)
    assert tolist(pairs) == [[["a", ""], ["b", "b"], ["c", ""]]]


# -- cache --------------------------------------------------------------------------------

def test_memory_cache_reads_the_input_once_and_freezes_randomness():
    calls = Counter()

    def count(v):
        calls["n"] += 1
        return v

    ds = Dataset.range(20).shuffle(20, seed=1).map(count).cache()
    first = ints(ds, 3)
    assert first == ints(Dataset.range(20).shuffle(20, seed=1), 0)   # epoch 0's elements
    assert ints(ds, 4) == first and ints(ds, 0) == first and calls["n"] == 20


def test_file_cache_is_npz_without_pickle_and_round_trips_ragged_elements(tmp_path):
    ragged = Dataset.range(5).map(lambda v: (np.arange(int(v)), {"s": np.array(f"x{int(v)}")}))
    cached = ragged.cache(tmp_path / "c")
    assert tolist(cached) == tolist(ragged)
    path = tmp_path / "c.npz"
    with np.load(path, allow_pickle=False) as archive:          # plain arrays only
        assert set(archive.files) >= {"header", "leaf0_data", "leaf0_shapes", "leaf1"}
    fresh = Dataset.range(5).map(lambda v: 1 / 0).cache(tmp_path / "c")   # input never read
    assert [(a.tolist(), d["s"].tolist()) for a, d in fresh.iterate(2)] == \
        [(list(range(v)), f"x{v}") for v in range(5)]
    partial = Dataset.range(5).cache(tmp_path / "p")
    it = iter(partial)
    next(it)
    it.close()
    assert not (tmp_path / "p.npz").exists()                   # an early stop stores nothing
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read"):
        list(Dataset.range(2).cache(tmp_path / "bad.npz"))


# -- interleave, zip, generators ----------------------------------------------------------

@pytest.mark.parametrize("calls", [None, 3])
def test_interleave_tf_example(calls):
    # tf.data docs: range(1, 6).interleave(lambda x: from_tensors(x).repeat(6),
    #                                       cycle_length=2, block_length=4)
    ds = Dataset.range(1, 6).interleave(lambda x: Dataset.from_tensors(x).repeat(6),
                                        cycle_length=2, block_length=4, num_parallel_calls=calls)
    assert ints(ds) == [1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 3, 3, 4, 4,
                        5, 5, 5, 5, 5, 5]


def test_interleave_of_files_reads_each_once():
    files = {k: np.arange(k * 10, k * 10 + 3) for k in range(4)}
    ds = Dataset.range(4).interleave(lambda k: Dataset.from_tensor_slices(files[int(k)]),
                                     cycle_length=4)
    assert ints(ds) == [0, 10, 20, 30, 1, 11, 21, 31, 2, 12, 22, 32]


def test_zip_tf_example_and_structure():
    a, b = Dataset.range(1, 4), Dataset.range(4, 7)
    assert tolist(Dataset.zip(a, b)) == [(1, 4), (2, 5), (3, 6)]
    c = Dataset.range(7, 13).batch(2)
    assert tolist(Dataset.zip((a, b, c))) == [(1, 4, [7, 8]), (2, 5, [9, 10]), (3, 6, [11, 12])]
    short = Dataset.zip({"x": Dataset.range(10), "y": Dataset.range(3)})
    assert short.cardinality() == 3 and [int(e["y"]) for e in short] == [0, 1, 2]


def test_from_generator_checks_the_signature_and_runs_per_epoch():
    def gen():
        for i in range(4):
            yield np.full(i % 2 + 1, i), i

    sig = (TensorSpec((None,), np.dtype(np.float32)), TensorSpec((), np.dtype(np.int64)))
    ds = Dataset.from_generator(gen, output_signature=sig)
    assert ds.element_spec == sig and ds.cardinality() == -1
    assert [(x.dtype, int(y)) for x, y in ds] == [(np.float32, i) for i in range(4)]
    assert len(list(ds)) == 4                                   # called anew
    bad = Dataset.from_generator(lambda: iter([(np.zeros(1), 0), (np.zeros((2, 2)), 1)]), sig)
    with pytest.raises(DataError, match=r"from_generator: element 1: \[0\]: shape \[2, 2\]"):
        list(bad)


def test_element_spec_through_steps():
    ds = Dataset.from_tensor_slices((np.zeros((6, 3), np.float32), np.arange(6)))
    assert ds.batch(4).unbatch().element_spec == ds.element_spec
    assert ds.take(2).skip(1).shard(2, 0).cache().prefetch(1).element_spec == ds.element_spec
    assert ds.map(lambda x, y: x[:2]).element_spec == TensorSpec((2,), np.dtype(np.float32))


# -- prefetch onto a device ---------------------------------------------------------------

def test_prefetch_to_device_gives_torch_tensors_in_order():
    import torch

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    plain = Dataset.from_tensor_slices((x, np.arange(10))).shuffle(10, seed=1).batch(4)
    sent = plain.prefetch_to_device("cpu", buffer_size=2)
    pairs = list(zip(sent.iterate(1), plain.iterate(1)))
    assert len(pairs) == 3
    for (tx, ty), (nx, ny) in pairs:
        assert isinstance(tx, torch.Tensor) and tx.device.type == "cpu"
        assert torch.equal(tx, torch.from_numpy(nx)) and torch.equal(ty, torch.from_numpy(ny))
    with pytest.raises(DataError, match="cannot send"):
        list(Dataset.from_tensor_slices(np.array(["a"])).prefetch_to_device("cpu"))


@pytest.mark.cuda
def test_prefetch_to_cuda_uses_pinned_memory_and_keeps_values():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x = np.random.default_rng(0).random((64, 3)).astype(np.float32)
    ds = Dataset.from_tensor_slices(x).batch(16).prefetch_to_device("cuda", buffer_size=3)
    got = [t for t in ds]
    assert all(t.device.type == "cuda" for t in got)
    np.testing.assert_array_equal(torch.cat(got).cpu().numpy(), x)
