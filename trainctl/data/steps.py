"""The transformation steps of a :class:`~trainctl.data.dataset.Dataset`, one class each.

Each class is registered in :data:`~trainctl.data.dataset.transformations` under its
tf.data name, takes its input dataset first, validates its arguments in ``__init__``
(DataError on a bad value) and implements ``_iterate(key)``, ``_cardinality()`` and,
when it changes elements, ``_element_spec()``.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from trainctl.data.dataset import (AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY,
                                   Dataset, Key, check_int, transformations)
from trainctl.data.structure import TensorSpec, map_structure, spec_of, stack, to_arrays
from trainctl.errors import DataError


class Step(Dataset):
    """A transformation of one input dataset; by default keeps its size and element spec."""

    def __init__(self, input: Dataset):
        super().__init__()
        if not isinstance(input, Dataset):
            raise TypeError(f"{type(self).__name__} needs a Dataset input, got {type(input).__name__}")
        self.input = input

    def _cardinality(self) -> int:
        return self.input.cardinality()

    def _element_spec(self) -> Any:
        return self.input.element_spec


def _call(fn: Callable[..., Any], element: Any) -> Any:
    """Call ``fn`` tf.data-style: a tuple element is unpacked into positional arguments."""
    return fn(*element) if isinstance(element, tuple) else fn(element)


@transformations.register("map")
class Map(Step):
    """Element-wise ``fn``; its results' leaves become numpy arrays (scalars → 0-d).

    ``element_spec`` is that of ``fn`` applied to the first input element of epoch 0;
    it raises DataError when the input is empty.
    """

    def __init__(self, input: Dataset, fn: Callable[..., Any]):
        super().__init__(input)
        if not callable(fn):
            raise DataError(f"map: fn must be callable, got {fn!r}")
        self.fn = fn

    def _iterate(self, key: Key) -> Iterator[Any]:
        for element in self.input._iterate(key):
            yield to_arrays(_call(self.fn, element))

    def _element_spec(self) -> Any:
        elements = self.input.iterate(0)
        try:
            first = next(elements, None)
        finally:
            getattr(elements, "close", lambda: None)()
        if first is None:
            raise DataError("map: cannot infer the element spec of an empty dataset")
        return spec_of(to_arrays(_call(self.fn, first)))


@transformations.register("filter")
class Filter(Step):
    """Elements for which ``predicate`` (called like ``map``'s fn) returns a true scalar.

    Raises DataError during iteration when the predicate returns a non-scalar.
    """

    def __init__(self, input: Dataset, predicate: Callable[..., Any]):
        super().__init__(input)
        if not callable(predicate):
            raise DataError(f"filter: predicate must be callable, got {predicate!r}")
        self.predicate = predicate

    def _iterate(self, key: Key) -> Iterator[Any]:
        for element in self.input._iterate(key):
            keep = np.asarray(_call(self.predicate, element))
            if keep.size != 1:
                raise DataError(f"filter: predicate must return one boolean, got shape {list(keep.shape)}")
            if bool(keep):
                yield element

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        return 0 if n == 0 else UNKNOWN_CARDINALITY


class _Draws:
    """Uniform indices in [0, n) from ``rng``, drawn in chunks (one draw per output)."""

    def __init__(self, rng: np.random.Generator, chunk: int = 1024):
        self._rng, self._chunk = rng, chunk
        self._u: list[float] = []

    def index(self, n: int) -> int:
        if not self._u:
            self._u = self._rng.random(self._chunk).tolist()[::-1]
        return min(int(self._u.pop() * n), n - 1)


@transformations.register("shuffle")
class Shuffle(Step):
    """Random order through a buffer, with tf.data's semantics.

    The buffer is first filled with the first ``buffer_size`` input elements. Then each
    output is a uniformly chosen buffer slot, which is refilled with the next input
    element; once the input is exhausted the rest of the buffer is emitted in uniformly
    random order. So with ``buffer_size`` >= the dataset size the result is a uniform
    random permutation; with a smaller buffer an element can move back arbitrarily far
    but forward at most ``buffer_size - 1`` places (``buffer_size=1`` keeps the order).

    The generator is ``numpy.random.default_rng([seed, *key])`` (key ``(epoch,)`` at
    top level), so each epoch has its own order and the same (seed, epoch) the same one;
    with ``reshuffle_each_iteration=False`` it is ``default_rng([seed])`` for every
    epoch. ``seed=None`` draws a seed from the OS once, when the step is made.
    """

    def __init__(self, input: Dataset, buffer_size: int, seed: int | None = None,
                 reshuffle_each_iteration: bool = True):
        super().__init__(input)
        check_int("shuffle", "buffer_size", buffer_size, minimum=1)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
        check_int("shuffle", "seed", seed, minimum=0)
        if not isinstance(reshuffle_each_iteration, (bool, np.bool_)):
            raise DataError("shuffle: reshuffle_each_iteration must be true or false, "
                            f"got {reshuffle_each_iteration!r}")
        self.buffer_size, self.seed = int(buffer_size), int(seed)
        self.reshuffle_each_iteration = bool(reshuffle_each_iteration)

    def _iterate(self, key: Key) -> Iterator[Any]:
        entropy = [self.seed, *key] if self.reshuffle_each_iteration else [self.seed]
        draws = _Draws(np.random.default_rng(entropy))
        buffer: list[Any] = []
        for element in self.input._iterate(key):
            if len(buffer) < self.buffer_size:
                buffer.append(element)
                continue
            i = draws.index(len(buffer))
            yield buffer[i]
            buffer[i] = element
        while buffer:
            i = draws.index(len(buffer))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()


@transformations.register("batch")
class Batch(Step):
    """Stack ``batch_size`` consecutive elements leaf-wise: leaf [s...] → [batch_size, s...].

    The last batch holds the remainder unless ``drop_remainder``. The element spec's
    first dimension is ``batch_size`` when ``drop_remainder`` else None. Raises DataError
    when elements of one batch differ in shape.
    """

    def __init__(self, input: Dataset, batch_size: int, drop_remainder: bool = False):
        super().__init__(input)
        check_int("batch", "batch_size", batch_size, minimum=1)
        if not isinstance(drop_remainder, (bool, np.bool_)):
            raise DataError(f"batch: drop_remainder must be true or false, got {drop_remainder!r}")
        self.batch_size, self.drop_remainder = int(batch_size), bool(drop_remainder)

    def _iterate(self, key: Key) -> Iterator[Any]:
        pending: list[Any] = []
        for element in self.input._iterate(key):
            pending.append(element)
            if len(pending) == self.batch_size:
                yield stack(pending)
                pending = []
        if pending and not self.drop_remainder:
            yield stack(pending)

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if n < 0:
            return n
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def _element_spec(self) -> Any:
        first = self.batch_size if self.drop_remainder else None
        return map_structure(lambda s: TensorSpec((first, *s.shape), s.dtype),
                             self.input.element_spec)


@transformations.register("take")
class Take(Step):
    """The first ``count`` elements; ``count=-1`` takes all."""

    def __init__(self, input: Dataset, count: int):
        super().__init__(input)
        check_int("take", "count", count, minimum=-1)
        self.count = int(count)

    def _iterate(self, key: Key) -> Iterator[Any]:
        stop = None if self.count < 0 else self.count
        return itertools.islice(self.input._iterate(key), stop)

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count < 0:
            return n
        if n == INFINITE_CARDINALITY:
            return self.count
        return n if n == UNKNOWN_CARDINALITY else min(n, self.count)


@transformations.register("skip")
class Skip(Step):
    """All but the first ``count`` elements; ``count=-1`` skips all."""

    def __init__(self, input: Dataset, count: int):
        super().__init__(input)
        check_int("skip", "count", count, minimum=-1)
        self.count = int(count)

    def _iterate(self, key: Key) -> Iterator[Any]:
        if self.count < 0:
            for _ in self.input._iterate(key):
                pass
            return iter(())
        return itertools.islice(self.input._iterate(key), self.count, None)

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count < 0:
            return 0 if n != INFINITE_CARDINALITY else n
        return n if n < 0 else max(0, n - self.count)


@transformations.register("repeat")
class Repeat(Step):
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

    def _iterate(self, key: Key) -> Iterator[Any]:
        for r in itertools.count() if self.count is None else range(self.count):
            empty = True
            for element in self.input._iterate((*key, r)):
                empty = False
                yield element
            if empty:
                return

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if self.count is None:
            return 0 if n == 0 else INFINITE_CARDINALITY
        if self.count == 0:
            return 0
        return n if n < 0 else n * self.count


_END = object()


@transformations.register("prefetch")
class Prefetch(Step):
    """Elements produced ahead by a background thread into a queue of ``buffer_size``.

    ``buffer_size=AUTOTUNE`` (-1) uses 2. The order is the input's. An exception raised
    while producing is re-raised in the consuming thread at that point of the sequence.
    Closing or dropping the iterator early stops the thread.
    """

    def __init__(self, input: Dataset, buffer_size: int = AUTOTUNE):
        super().__init__(input)
        check_int("prefetch", "buffer_size", buffer_size, minimum=-1)
        if buffer_size == 0:
            raise DataError("prefetch: buffer_size must be >= 1 or AUTOTUNE (-1), got 0")
        self.buffer_size = 2 if buffer_size == AUTOTUNE else int(buffer_size)

    def _iterate(self, key: Key) -> Iterator[Any]:
        slots: queue.Queue = queue.Queue(maxsize=self.buffer_size)
        stop = threading.Event()
        thread = threading.Thread(target=self._produce, args=(key, slots, stop),
                                  name="trainctl-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item, error = slots.get()
                if error is not None:
                    raise error
                if item is _END:
                    return
                yield item
        finally:
            stop.set()

    def _produce(self, key: Key, slots: queue.Queue, stop: threading.Event) -> None:
        source = self.input._iterate(key)
        try:
            for element in source:
                if not _put(slots, (element, None), stop):
                    return
            _put(slots, (_END, None), stop)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            _put(slots, (None, exc), stop)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()


def _put(slots: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has stopped; True when it was put."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False
