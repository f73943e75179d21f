"""Element-selecting transformation steps: filter, take, skip, repeat, shard, unbatch.

Each class is registered in :data:`~trainctl.data.dataset.transformations` under its
tf.data name, takes its input dataset first, validates its arguments in ``__init__``
(DataError on a bad value) and implements ``_iterate(key, start)``, ``_cardinality()``
and, when it changes elements, ``_element_spec()``. Steps that only select or reorder
elements of an indexable input are indexable too (``_index_order``), which lets
``batch`` gather by index. Ordering steps live in :mod:`~trainctl.data.ordering`, the
threaded ones in :mod:`~trainctl.data.parallel`.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import (INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset, Key,
                                   check_int, drop_indices, iterate_indexed, transformations)
from trainctl.data.structure import TensorSpec, map_structure, unstack
from trainctl.errors import DataError


class Step(Dataset):
    """A transformation of one input dataset; by default keeps its size and element spec."""

    def __init__(self, input: Dataset):
        super().__init__()
        if not isinstance(input, Dataset):
            raise TypeError(f"{type(self).__name__} needs a Dataset input, got {type(input).__name__}")
        self.input = input

    def _inputs(self) -> tuple[Dataset, ...]:
        return (self.input,)

    def _cardinality(self) -> int:
        return self.input.cardinality()

    def _element_spec(self) -> Any:
        return self.input.element_spec


class IndexStep(Step):
    """A step that selects or reorders elements and is indexable when its input is."""

    def _index_root(self) -> Dataset | None:
        return self.input._index_root()

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        if self._index_root() is not None:
            return iterate_indexed(self, key, start)
        return self._iterate_elements(key, start)

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        raise NotImplementedError


def call_unpacked(fn: Callable[..., Any], element: Any) -> Any:
    """Call ``fn`` tf.data-style: a tuple element is unpacked into positional arguments."""
    return fn(*element) if isinstance(element, tuple) else fn(element)


@transformations.register("filter")
class Filter(Step):
    """Elements for which ``predicate`` (called like ``map``'s fn) returns a true scalar.

    Raises DataError during iteration when the predicate returns a non-scalar.
    Resuming at a position re-evaluates the predicate on the elements before it.
    """

    def __init__(self, input: Dataset, predicate: Callable[..., Any]):
        super().__init__(input)
        if not callable(predicate):
            raise DataError(f"filter: predicate must be callable, got {predicate!r}")
        self.predicate = predicate

    def _kept(self, key: Key) -> Iterator[Any]:
        for element in self.input._iterate(key):
            keep = np.asarray(call_unpacked(self.predicate, element))
            if keep.size != 1:
                raise DataError(f"filter: predicate must return one boolean, got shape {list(keep.shape)}")
            if bool(keep):
                yield element

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        return itertools.islice(self._kept(key), start, None)

    def _params(self) -> dict[str, Any]:
        fn = self.predicate
        name = fn.describe() if hasattr(fn, "describe") else getattr(fn, "__qualname__", type(fn).__name__)
        return {"predicate": name}

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        return 0 if n == 0 else UNKNOWN_CARDINALITY


@transformations.register("take")
class Take(IndexStep):
    """The first ``count`` elements; ``count=-1`` takes all."""

    def __init__(self, input: Dataset, count: int):
        super().__init__(input)
        check_int("take", "count", count, minimum=-1)
        self.count = int(count)

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        stop = None if self.count < 0 else max(0, self.count - start)
        return itertools.islice(self.input._iterate(key, start), stop)

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        if self.count < 0:
            yield from self.input._index_order(key)
            return
        left = self.count
        if left == 0:
            return
        for chunk in self.input._index_order(key):
            yield chunk[:left]
            left -= min(left, len(chunk))
            if left == 0:
                return

    def _params(self) -> dict[str, Any]:
        return {"count": self.count}

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count < 0:
            return n
        if n == INFINITE_CARDINALITY:
            return self.count
        return n if n == UNKNOWN_CARDINALITY else min(n, self.count)


@transformations.register("skip")
class Skip(IndexStep):
    """All but the first ``count`` elements; ``count=-1`` skips all."""

    def __init__(self, input: Dataset, count: int):
        super().__init__(input)
        check_int("skip", "count", count, minimum=-1)
        self.count = int(count)

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        if self.count < 0:
            for _ in self.input._iterate(key):
                pass
            return iter(())
        return self.input._iterate(key, self.count + start)

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        if self.count < 0:
            for _ in self.input._index_order(key):
                pass
            return
        yield from drop_indices(self.input._index_order(key), self.count)

    def _params(self) -> dict[str, Any]:
        return {"count": self.count}

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count < 0:
            return 0 if n != INFINITE_CARDINALITY else n
        return n if n < 0 else max(0, n - self.count)


@transformations.register("repeat")
class Repeat(IndexStep):
    """The input ``count`` times (forever when None or -1).

    Repetition r of epoch e iterates the input with key ``(e, r)``, so a shuffle before
    ``repeat`` gives each repetition its own order. Stops when a repetition is empty
    (rather than looping forever over an empty input).
    """

    def __init__(self, input: Dataset, count: int | None = None):
        super().__init__(input)
        if count is not None:
            check_int("repeat", "count", count, minimum=-1)
        self.count = None if count is None or count < 0 else int(count)

    def _repetitions(self, first: int = 0):
        return itertools.count(first) if self.count is None else range(first, self.count)

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        n = self.input.cardinality()
        if start and n <= 0:       # unknown size: replay up to start
            yield from itertools.islice(self._iterate_elements(key, 0), start, None)
            return
        first, offset = divmod(start, n) if start else (0, 0)
        for r in self._repetitions(first):
            empty = True
            for element in self.input._iterate((*key, r), offset):
                empty = False
                yield element
            if empty and offset == 0:
                return
            offset = 0

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        for r in self._repetitions():
            empty = True
            for chunk in self.input._index_order((*key, r)):
                if len(chunk):
                    empty = False
                    yield chunk
            if empty:
                return

    def _params(self) -> dict[str, Any]:
        return {"count": self.count}

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count is None:
            return 0 if n == 0 else INFINITE_CARDINALITY
        if self.count == 0:
            return 0
        return n if n < 0 else n * self.count


@transformations.register("shard")
class Shard(IndexStep):
    """Elements ``index, index + num_shards, index + 2*num_shards, ...`` of the input.

    Over ``index = 0 .. num_shards - 1`` the shards cover every element exactly once.
    Raises DataError unless ``0 <= index < num_shards``.
    """

    def __init__(self, input: Dataset, num_shards: int, index: int):
        super().__init__(input)
        check_int("shard", "num_shards", num_shards, minimum=1)
        check_int("shard", "index", index, minimum=0)
        if index >= num_shards:
            raise DataError(f"shard: index must be < num_shards ({num_shards}), got {index}")
        self.num_shards, self.index = int(num_shards), int(index)

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        source = self.input._iterate(key, self.index + start * self.num_shards)
        return itertools.islice(source, 0, None, self.num_shards)

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        position = 0                          # global position of the chunk's first index
        for chunk in self.input._index_order(key):
            first = (self.index - position) % self.num_shards
            yield chunk[first::self.num_shards]
            position += len(chunk)

    def _params(self) -> dict[str, Any]:
        return {"num_shards": self.num_shards, "index": self.index}

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if n < 0:
            return n
        return max(0, -(-(n - self.index) // self.num_shards))


@transformations.register("unbatch")
class Unbatch(Step):
    """Each input element split along its first axis (``[B, ...]`` leaves → B elements).

    Raises DataError when a leaf is a scalar or the leaves differ in first-axis length.
    """

    def _elements(self, key: Key) -> Iterator[Any]:
        for batch in self.input._iterate(key):
            yield from unstack(batch)

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        return itertools.islice(self._elements(key), start, None)

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        return n if n in (0, INFINITE_CARDINALITY) else UNKNOWN_CARDINALITY

    def _element_spec(self) -> Any:
        def drop_first(spec: TensorSpec) -> TensorSpec:
            if not spec.shape:
                raise DataError("unbatch: the input has scalar components; nothing to split")
            return TensorSpec(tuple(spec.shape[1:]), spec.dtype)

        return map_structure(drop_first, self.input.element_spec)
