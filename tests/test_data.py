"""Tests of trainctl.data's Dataset: every expected value is written out or derived independently."""

from __future__ import annotations

import gc
import ast
import itertools
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import trainctl.data
from trainctl.data import (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, TensorSpec,
                           transformations)
from trainctl.errors import DataError, UnknownNameError


def ints(ds, epoch=None):
    it = iter(ds) if epoch is None else ds.iterate(epoch=epoch)
    return [int(e) for e in it]


# -- sources ------------------------------------------------------------------------------

def test_from_tensor_slices_tuple_elements_and_spec():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([3, 1, 4, 1, 5, 9], dtype=np.int64)
    ds = Dataset.from_tensor_slices((x, y))
    elements = list(ds)
    assert len(elements) == 6 and ds.cardinality() == 6 and len(ds) == 6
    fx, fy = elements[2]
    assert isinstance(fy, np.ndarray) and fy.shape == () and fy.dtype == np.int64 and fy == 4
    np.testing.assert_array_equal(fx, [4.0, 5.0])
    assert fx.dtype == np.float32
    assert ds.element_spec == (TensorSpec((2,), np.dtype(np.float32)),
                               TensorSpec((), np.dtype(np.int64)))


def test_from_tensor_slices_dict_and_single_array():
    ds = Dataset.from_tensor_slices({"a": np.arange(3), "b": np.ones((3, 2))})
    first = next(iter(ds))
    assert set(first) == {"a", "b"} and first["b"].shape == (2,)
    assert [int(e) for e in Dataset.from_tensor_slices([7, 8, 9])] == [7, 8, 9]


def test_from_tensor_slices_length_mismatch_names_lengths():
    with pytest.raises(DataError, match=r"100.*99"):
        Dataset.from_tensor_slices((np.zeros((100, 3)), np.zeros(99)))
    with pytest.raises(DataError, match="scalar"):
        Dataset.from_tensor_slices((np.zeros(3), np.float32(1)))


def test_elements_are_read_only_so_the_source_cannot_be_corrupted():
    x = np.zeros((2, 3))
    element = next(iter(Dataset.from_tensor_slices(x)))
    with pytest.raises(ValueError):
        element[0] = 1.0
    assert x.flags.writeable


def test_range():
    assert ints(Dataset.range(5)) == [0, 1, 2, 3, 4]
    assert ints(Dataset.range(2, 11, 3)) == [2, 5, 8]
    assert Dataset.range(2, 11, 3).cardinality() == 3
    assert Dataset.range(4).element_spec == TensorSpec((), np.dtype(np.int64))


# -- batch --------------------------------------------------------------------------------

def test_batch_shapes_and_short_last_batch():
    x = np.random.default_rng(0).random((10, 4)).astype(np.float32)
    y = np.arange(10)
    batches = list(Dataset.from_tensor_slices((x, y)).batch(4))
    assert [b[0].shape for b in batches] == [(4, 4), (4, 4), (2, 4)]
    assert [b[1].shape for b in batches] == [(4,), (4,), (2,)]
    np.testing.assert_array_equal(batches[2][0], x[8:10])
    np.testing.assert_array_equal(batches[1][1], [4, 5, 6, 7])


def test_batch_drop_remainder_and_spec():
    ds = Dataset.from_tensor_slices((np.zeros((10, 4), np.float32), np.arange(10)))
    dropped = ds.batch(4, drop_remainder=True)
    assert [b[0].shape[0] for b in dropped] == [4, 4]
    assert dropped.cardinality() == 2 and ds.batch(4).cardinality() == 3
    assert ds.batch(4).element_spec[0] == TensorSpec((None, 4), np.dtype(np.float32))
    assert dropped.element_spec[1] == TensorSpec((4,), np.dtype(np.int64))


def test_batch_of_dicts_and_ragged_error():
    ds = Dataset.from_tensor_slices({"a": np.arange(5)}).batch(2)
    assert [list(b["a"]) for b in ds] == [[0, 1], [2, 3], [4]]
    ragged = Dataset.range(3).map(lambda i: np.zeros(int(i) + 1)).batch(3)
    with pytest.raises(DataError, match=r"\[1\].*\[2\]"):
        list(ragged)


# -- shuffle ------------------------------------------------------------------------------

def test_shuffle_is_a_deterministic_permutation_per_epoch():
    ds = Dataset.range(50).shuffle(50, seed=7)
    epochs = [ints(ds) for _ in range(3)]
    for order in epochs:
        assert sorted(order) == list(range(50)) and order != list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    again = Dataset.range(50).shuffle(50, seed=7)
    assert [ints(again) for _ in range(3)] == epochs            # same seed, same orders
    assert ints(Dataset.range(50).shuffle(50, seed=8)) != epochs[0]


def test_iterate_epoch_k_equals_kth_iter_without_replay():
    ds = Dataset.range(20).shuffle(20, seed=3).batch(6)
    via_iter = [[b.tolist() for b in ds] for _ in range(4)]
    fresh = Dataset.range(20).shuffle(20, seed=3).batch(6)
    assert [b.tolist() for b in fresh.iterate(epoch=3)] == via_iter[3]
    assert fresh.epoch == 0                       # iterate(epoch=k) leaves iter()'s counter
    fresh.epoch = 2                               # a resumed run continues at epoch 2
    assert [b.tolist() for b in fresh] == via_iter[2]


def test_shuffle_without_reshuffle_repeats_the_order():
    ds = Dataset.range(10).shuffle(10, seed=1, reshuffle_each_iteration=False)
    assert ints(ds) == ints(ds) == ints(ds, epoch=5)


def test_full_buffer_shuffle_is_uniform():
    ds = Dataset.range(3).shuffle(3, seed=11)
    counts = Counter(tuple(ints(ds, epoch=e)) for e in range(6000))
    assert len(counts) == 6
    assert all(abs(c - 1000) < 150 for c in counts.values()), counts   # ~4.9 sigma


def test_small_buffer_follows_tf_semantics():
    # buffer 1 keeps the order; an element moves forward at most buffer_size - 1 places
    assert ints(Dataset.range(10).shuffle(1, seed=0)) == list(range(10))
    for epoch in range(20):
        order = ints(Dataset.range(40).shuffle(3, seed=5), epoch=epoch)
        position = {v: p for p, v in enumerate(order)}
        assert sorted(order) == list(range(40))
        assert all(position[i] >= i - 2 for i in range(40))
    # with buffer 2 over [0, 1, 2] the first output is 0 or 1, each half the time
    firsts = Counter(ints(Dataset.range(3).shuffle(2, seed=2), epoch=e)[0] for e in range(2000))
    assert set(firsts) == {0, 1} and abs(firsts[0] - 1000) < 120


def test_shuffle_before_repeat_reorders_each_repetition():
    orders = ints(Dataset.range(10).shuffle(10, seed=4).repeat(3))
    parts = [orders[i:i + 10] for i in (0, 10, 20)]
    assert all(sorted(p) == list(range(10)) for p in parts)
    assert parts[0] != parts[1] != parts[2]


def test_bad_arguments_raise_data_error():
    ds = Dataset.range(5)
    for make in (lambda: ds.batch(0), lambda: ds.shuffle(0, seed=1), lambda: ds.shuffle(5, seed=-1),
                 lambda: ds.take(-2), lambda: ds.repeat(-3), lambda: ds.prefetch(0),
                 lambda: ds.batch(True), lambda: ds.iterate(epoch=-1)):
        with pytest.raises(DataError):
            make()


# -- take, skip, repeat, filter, map, cardinality -----------------------------------------

def test_take_skip_repeat_filter_map():
    ds = Dataset.range(10)
    assert ints(ds.take(3)) == [0, 1, 2]
    assert ints(ds.take(-1)) == list(range(10))
    assert ints(ds.skip(7)) == [7, 8, 9]
    assert ints(ds.skip(-1)) == []
    assert ints(ds.take(2).repeat(3)) == [0, 1, 0, 1, 0, 1]
    assert ints(ds.repeat().take(13)) == list(range(10)) + [0, 1, 2]
    assert ints(ds.filter(lambda v: v % 3 == 0)) == [0, 3, 6, 9]
    assert ints(ds.map(lambda v: v * v)) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    pairs = Dataset.from_tensor_slices((np.arange(4), np.arange(4) * 10))
    summed = pairs.map(lambda a, b: a + b)            # tuples are unpacked, as in tf.data
    assert ints(summed) == [0, 11, 22, 33]
    assert [int(a) for a, _ in pairs.filter(lambda a, b: b > 15)] == [2, 3]
    assert ints(Dataset.range(0).repeat()) == []      # empty input does not loop forever


def test_map_element_spec_and_structure():
    ds = Dataset.range(4).map(lambda v: (np.full(3, v, np.float32), v))
    assert ds.element_spec == (TensorSpec((3,), np.dtype(np.float32)),
                               TensorSpec((), np.dtype(np.int64)))


@pytest.mark.parametrize("make, expected", [
    (lambda: Dataset.range(10), 10),
    (lambda: Dataset.range(10).batch(3), 4),
    (lambda: Dataset.range(10).batch(3, drop_remainder=True), 3),
    (lambda: Dataset.range(10).filter(lambda v: v > 2), UNKNOWN_CARDINALITY),
    (lambda: Dataset.range(10).repeat(), INFINITE_CARDINALITY),
    (lambda: Dataset.range(10).repeat(2), 20),
    (lambda: Dataset.range(10).repeat().take(5), 5),
    (lambda: Dataset.range(10).take(30), 10),
    (lambda: Dataset.range(10).skip(4), 6),
    (lambda: Dataset.range(10).skip(30), 0),
    (lambda: Dataset.range(10).filter(lambda v: v > 2).batch(2), UNKNOWN_CARDINALITY),
    (lambda: Dataset.range(0).repeat(), 0),
    (lambda: Dataset.range(10).shuffle(4, seed=0).map(lambda v: v).prefetch(2), 10),
])
def test_cardinality(make, expected):
    assert make().cardinality() == expected


def test_len_of_unknown_or_infinite_dataset_is_a_type_error():
    with pytest.raises(TypeError, match="infinite"):
        len(Dataset.range(3).repeat())


# -- prefetch -----------------------------------------------------------------------------

def test_prefetch_keeps_order_and_reraises_producer_errors():
    assert ints(Dataset.range(100).prefetch(3)) == list(range(100))

    def fail_at_3(v):
        if v == 3:
            raise ValueError("boom at 3")
        return v

    it = iter(Dataset.range(10).map(fail_at_3).prefetch(2))
    assert [int(next(it)) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(DataError, match="element 3 .*ValueError: boom at 3") as info:
        next(it)
    assert isinstance(info.value.__cause__, ValueError)


def _prefetch_threads() -> int:
    return sum(t.name == "trainctl-prefetch" and t.is_alive() for t in threading.enumerate())


def test_prefetch_thread_stops_when_consumer_stops_early():
    before = _prefetch_threads()
    it = iter(Dataset.range(10_000).prefetch(2))
    assert int(next(it)) == 0
    it.close()
    del it
    gc.collect()
    deadline = time.monotonic() + 2.0
    while _prefetch_threads() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _prefetch_threads() == before
    assert ints(Dataset.range(10).prefetch(2).take(3)) == [0, 1, 2]


# -- registry -----------------------------------------------------------------------------

def test_every_registered_transformation_has_a_method_and_apply_by_name():
    names = transformations.names()
    assert {"map", "filter", "shuffle", "batch", "take", "skip", "repeat", "prefetch"} <= set(names)
    for name in names:
        assert callable(getattr(Dataset, name, None)), f"Dataset.{name} is missing"
    assert ints(Dataset.range(6).apply("batch", 4).map(lambda b: b.sum())) == [6, 9]
    with pytest.raises(UnknownNameError, match="shuffle"):
        Dataset.range(3).apply("shufle", 3)


def _imported_modules(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "trainctl":               # from trainctl import spec
                names += [f"trainctl.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


def test_data_package_imports_only_what_it_may():
    # The top-level trainctl package imports torch, so check trainctl/data's own imports.
    allowed = ("numpy", "sklearn", "pydantic", "PIL", "trainctl.errors", "trainctl.registry",
               "trainctl.spec", "trainctl.data")
    for path in Path(trainctl.data.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for name in _imported_modules(tree):
            if name.split(".")[0] in sys.stdlib_module_names or name == "__future__":
                continue
            if name == "torch" and path.name == "device.py":
                # prefetch_to_device imports torch lazily, inside its iteration only
                assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                               any(a.name == "torch" for a in n.names) for n in tree.body)
                continue
            assert any(name == a or name.startswith(a + ".") for a in allowed), \
                f"{path.name} imports {name}"


def test_islice_of_infinite_dataset_is_lazy():
    assert [int(v) for v in itertools.islice(Dataset.range(3).repeat(), 7)] == [0, 1, 2, 0, 1, 2, 0]
