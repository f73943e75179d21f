"""Steps that run work in threads: map (optionally parallel), prefetch, interleave.

Threads, not processes: numpy, Pillow and file reads release the GIL, and nothing has to
be pickled to reach a worker. Every step keeps its input's order, so the same seed gives
the same elements whatever ``num_parallel_calls`` or the prefetch depth. An error in a
worker is raised in the consuming thread, after every worker of that iteration has
stopped; closing or dropping an iterator early stops its threads too.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import numpy as np

from trainctl.data.dataset import AUTOTUNE, Dataset, Key, check_int, transformations, where
from trainctl.data.steps import Step, call_unpacked
from trainctl.data.structure import spec_of, to_arrays
from trainctl.errors import DataError, TrainctlError


class ElementTransform:
    """Base of named map transforms (:mod:`trainctl.data.transforms`).

    Unlike a plain function, a transform is called with the whole element (not
    unpacked) and, when ``random`` is true, with a numpy Generator seeded by
    ``[seed, *key, element_index]``, so its draws do not depend on threads or order.
    """

    random = False
    seed = 0
    #: True when the transform works on a batch as on each of its elements (element-wise
    #: arithmetic): then ``map`` keeps a pipeline indexable and ``batch`` applies it once
    #: per gathered batch
    batchable = False

    def __call__(self, element: Any, rng: np.random.Generator | None = None) -> Any:
        raise NotImplementedError


class _MappedRoot:
    """An indexable root seen through a batchable map: gathers, then maps the batch."""

    def __init__(self, root: Dataset, step: "Map"):
        self.root, self.step = root, step

    def _element(self, i: int) -> Any:
        return self.step._apply(self.root._element(i), None, i)

    def _gather(self, index: np.ndarray) -> Any:
        return self.step._apply(self.root._gather(index), None, None)


def _workers(op: str, value: int | None) -> int:
    if value is None:
        return 1
    check_int(op, "num_parallel_calls", value, minimum=-1)
    if value == 0:
        raise DataError(f"{op}: num_parallel_calls must be >= 1, AUTOTUNE (-1) or None, got 0")
    return (os.cpu_count() or 1) if value == AUTOTUNE else int(value)


@transformations.register("map")
class Map(Step):
    """Element-wise ``fn``; its results' leaves become numpy arrays (scalars → 0-d).

    A tuple element is unpacked into ``fn``'s arguments (tf.data's convention); an
    :class:`ElementTransform` gets the whole element and its own random generator.
    ``num_parallel_calls`` > 1 (or AUTOTUNE: one per CPU) calls ``fn`` in that many
    threads, up to twice that many elements ahead, yielding results in input order.

    An exception raised by ``fn`` becomes a DataError naming the element's index in the
    epoch (``map: element 3 (epoch 0): ValueError: ...``, chained to the original),
    raised in the caller once no worker is running. ``element_spec`` is that of ``fn``
    applied to the first input element of epoch 0 (DataError when the input is empty).
    """

    def __init__(self, input: Dataset, fn: Callable[..., Any], num_parallel_calls: int | None = None):
        super().__init__(input)
        if not callable(fn):
            raise DataError(f"map: fn must be callable, got {fn!r}")
        self.fn = fn
        self.workers = _workers("map", num_parallel_calls)

    def _apply(self, element: Any, key: Key | None, index: int | None) -> Any:
        fn = self.fn
        try:
            if isinstance(fn, ElementTransform):
                rng = np.random.default_rng([fn.seed, *key, index]) if fn.random else None  # type: ignore[misc]
                return to_arrays(fn(element, rng))
            return to_arrays(call_unpacked(fn, element))
        except Exception as exc:
            what = str(exc) if isinstance(exc, TrainctlError) else f"{type(exc).__name__}: {exc}"
            if key is None:   # on the index path: a source element or a gathered batch
                at = "a batch" if index is None else f"source element {index}"
                raise DataError(f"map: {at}: {what}") from exc
            raise DataError(f"map: element {index}{where(key)}: {what}") from exc

    def _index_root(self) -> Any:
        fn = self.fn
        if isinstance(fn, ElementTransform) and fn.batchable and not fn.random:
            root = self.input._index_root()
            if root is not None:
                return _MappedRoot(root, self)
        return None

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        return self.input._index_order(key)

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        if self.workers <= 1:
            for index, element in enumerate(self.input._iterate(key, start), start):
                yield self._apply(element, key, index)
            return
        yield from self._parallel(key, start)

    def _parallel(self, key: Key, start: int) -> Iterator[Any]:
        source = self.input._iterate(key, start)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="trainctl-map")
        pending: collections.deque = collections.deque()
        try:
            for index, element in enumerate(source, start):
                pending.append(pool.submit(self._apply, element, key, index))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            getattr(source, "close", lambda: None)()

    def _params(self) -> dict[str, Any]:
        fn = self.fn
        name = fn.describe() if hasattr(fn, "describe") else getattr(fn, "__qualname__", type(fn).__name__)
        return {"fn": name}

    def _seeds(self) -> dict[str, Any]:
        fn = self.fn
        return {"seed": fn.seed} if isinstance(fn, ElementTransform) and fn.random else {}

    def _element_spec(self) -> Any:
        elements = self.input._iterate((0,))
        try:
            first = next(elements, None)
        finally:
            getattr(elements, "close", lambda: None)()
        if first is None:
            raise DataError("map: cannot infer the element spec of an empty dataset")
        return spec_of(self._apply(first, (0,), 0))


_END = object()


def ahead(make: Callable[[], Iterator[Any]], buffer_size: int, name: str) -> Iterator[Any]:
    """The elements of ``make()``, produced by a background thread up to ``buffer_size`` ahead.

    An exception in the producer is re-raised here at its point in the sequence; closing
    this generator (or dropping it) stops the thread.
    """
    slots: queue.Queue = queue.Queue(maxsize=buffer_size)
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(make, slots, stop), name=name, daemon=True)
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


def _produce(make: Callable[[], Iterator[Any]], slots: queue.Queue, stop: threading.Event) -> None:
    source = None
    try:
        source = make()
        for element in source:
            if not _put(slots, (element, None), stop):
                return
        _put(slots, (_END, None), stop)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        _put(slots, (None, exc), stop)
    finally:
        getattr(source, "close", lambda: None)()


def _put(slots: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has stopped; True when it was put."""
    while not stop.is_set():
        try:
            slots.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


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

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        return ahead(lambda: self.input._iterate(key, start), self.buffer_size, "trainctl-prefetch")


@transformations.register("interleave")
class Interleave(Step):
    """tf.data's interleave: ``map_func(element)`` gives a Dataset per input element;
    ``cycle_length`` of them are open at once and ``block_length`` consecutive elements
    are taken from each in turn. When one ends, the next input element's dataset opens
    in its slot on the slot's next turn (tf.data's order exactly).

    ``cycle_length`` AUTOTUNE (-1) means one per CPU. With ``num_parallel_calls`` > 1
    each open dataset is produced ahead in its own thread; the order is unchanged.
    Inner dataset j of epoch e is iterated with key ``(e, j)``.
    """

    def __init__(self, input: Dataset, map_func: Callable[..., Dataset], cycle_length: int = AUTOTUNE,
                 block_length: int = 1, num_parallel_calls: int | None = None):
        super().__init__(input)
        if not callable(map_func):
            raise DataError(f"interleave: map_func must be callable, got {map_func!r}")
        check_int("interleave", "cycle_length", cycle_length, minimum=-1)
        check_int("interleave", "block_length", block_length, minimum=1)
        if cycle_length == 0:
            raise DataError("interleave: cycle_length must be >= 1 or AUTOTUNE (-1), got 0")
        self.map_func = map_func
        self.cycle_length = (os.cpu_count() or 1) if cycle_length == AUTOTUNE else int(cycle_length)
        self.block_length = int(block_length)
        self.parallel = _workers("interleave", num_parallel_calls) > 1

    def _open(self, element: Any, key: Key, j: int) -> Iterator[Any]:
        ds = call_unpacked(self.map_func, element)
        if not isinstance(ds, Dataset):
            raise DataError(f"interleave: map_func must return a Dataset, got {type(ds).__name__} "
                            f"for input element {j}{where(key)}")
        if self.parallel:
            return ahead(lambda: ds._iterate((*key, j)), 2 * self.block_length, "trainctl-interleave")
        return ds._iterate((*key, j))

    def _all(self, key: Key) -> Iterator[Any]:
        inputs = self.input._iterate(key)
        cycle: list[Iterator[Any] | None] = [None] * self.cycle_length
        opened = i = block = 0
        live = 0
        end_of_input = False
        try:
            while not end_of_input or live > 0:
                current = cycle[i]
                if current is not None:
                    element = next(current, _END)
                    if element is not _END:
                        yield element
                        block += 1
                        if block == self.block_length:
                            block, i = 0, (i + 1) % self.cycle_length
                        continue
                    getattr(current, "close", lambda: None)()
                    cycle[i], live = None, live - 1
                    block, i = 0, (i + 1) % self.cycle_length
                elif not end_of_input:
                    element = next(inputs, _END)
                    if element is _END:
                        end_of_input = True
                    else:
                        cycle[i] = self._open(element, key, opened)
                        opened, live = opened + 1, live + 1
                else:
                    block, i = 0, (i + 1) % self.cycle_length
        finally:
            for it in cycle:
                getattr(it, "close", lambda: None)()
            getattr(inputs, "close", lambda: None)()

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        return itertools.islice(self._all(key), start, None)

    def _params(self) -> dict[str, Any]:
        return {"cycle_length": self.cycle_length, "block_length": self.block_length}

    def _cardinality(self) -> int:
        return 0 if self.input.cardinality() == 0 else -1

    def _element_spec(self) -> Any:
        elements = self.input._iterate((0,))
        try:
            first = next(elements, _END)
        finally:
            getattr(elements, "close", lambda: None)()
        if first is _END:
            raise DataError("interleave: cannot infer the element spec of an empty dataset")
        return self._open_spec(first)

    def _open_spec(self, element: Any) -> Any:
        ds = call_unpacked(self.map_func, element)
        if not isinstance(ds, Dataset):
            raise DataError(f"interleave: map_func must return a Dataset, got {type(ds).__name__}")
        return ds.element_spec
