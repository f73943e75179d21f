"""Steps that run work in threads: map (optionally parallel) and prefetch; the thread
helpers ``interleave`` (:mod:`trainctl.data.interleave`) and ``prefetch_to_device`` use.

Threads, not processes: numpy, Pillow and file reads release the GIL, and nothing has to
be pickled to reach a worker (a process pool would pickle the function and every element;
trainctl pickles nothing). So a parallel map speeds up only the part of the function that
runs without the GIL (Pillow's resampling, numpy and torch kernels on large enough
arrays); pure-Python work runs one thread at a time. Parallel map hands out elements in
chunks sized to the function's measured time (about 2 ms of work each), so the hand-off
costs little even when one call takes microseconds, and it runs serially when the
threads do not pay off, measured on the first elements (:mod:`trainctl.data.overlap`).
Every step keeps its input's order, so the same seed gives the same elements whatever
``num_parallel_calls`` or the prefetch depth. An error in a worker is raised in the
consuming thread, after every worker of that iteration has stopped; closing or dropping
an iterator early stops its threads too.
"""

from __future__ import annotations

import collections
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Generator, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import AUTOTUNE, Dataset, Key, check_int, transformations, where
from trainctl.data.overlap import Backoff, ParallelProbe
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


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_for(op: str, value: int | None) -> int:
    """Threads for ``num_parallel_calls``: None → 1, AUTOTUNE (-1) → one per CPU; DataError
    for 0, a value below -1 or a non-integer."""
    if value is None:
        return 1
    check_int(op, "num_parallel_calls", value, minimum=-1)
    if value == 0:
        raise DataError(f"{op}: num_parallel_calls must be >= 1, AUTOTUNE (-1) or None, got 0")
    return cpu_count() if value == AUTOTUNE else int(value)


class ChunkSizer:
    """Elements per chunk handed to a worker, so one chunk holds about ``target`` seconds
    of work: the per-element time is a running estimate fed by the workers' timings.
    Starts at 1 element and stays within [1, ``largest``]. Only the speed depends on
    it: which element gets which index (and random draws) does not."""

    def __init__(self, target: float = 0.002, largest: int = 256):
        self.target, self.largest = target, largest
        self.per_element: float | None = None

    def record(self, seconds: float, count: int) -> None:
        rate = seconds / max(count, 1)
        old = self.per_element
        self.per_element = rate if old is None else 0.7 * old + 0.3 * rate

    def size(self) -> int:
        if self.per_element is None:
            return 1
        return int(min(self.largest, max(1, self.target / max(self.per_element, 1e-9))))


@transformations.register("map")
class Map(Step):
    """Element-wise ``fn``; its results' leaves become numpy arrays (scalars → 0-d).

    A tuple element is unpacked into ``fn``'s arguments (tf.data's convention); an
    :class:`ElementTransform` gets the whole element and its own random generator.
    ``num_parallel_calls`` > 1 (or AUTOTUNE: one per CPU) calls ``fn`` in up to that many
    threads, yielding results in input order, when threads pay off: each iteration first
    applies ``fn`` in the caller for about 20 ms of work, stays serial if an element costs
    under 20 µs, else starts the threads and, after about 50 ms of their work, goes on
    serially if they ran under 1.2x the serial speed (``fn`` holding the GIL, or no idle
    CPU), and probes again after 1 s of serial work, then 2 s, 4 s ... (at most 64 s,
    counted across iterations).
    :class:`~trainctl.data.overlap.ParallelProbe` decides; ``serial_reason`` says why the
    latest iteration ran serially (at its end). Workers take chunks of consecutive elements
    (:class:`ChunkSizer`: about 2 ms of work each, at most 256 elements), up to twice as
    many chunks as threads ahead of the caller; element ``i`` is still called with index
    ``i``, so the results do not depend on the thread count, the chunk sizes or when the
    map ran serially.

    An exception raised by ``fn`` becomes a DataError naming the element's index in the
    epoch (``map: element 3 (epoch 0): ValueError: ...``, chained to the original),
    raised in the caller once no worker is running. ``element_spec`` is that of ``fn``
    applied to the first input element of epoch 0 (DataError when the input is empty).
    """

    #: makes a probe from the thread count (tests swap in other settings)
    probe_type: Callable[[int], ParallelProbe] = ParallelProbe
    #: seconds of serial work after which threads that did not pay off are tried again
    retry_after = 1.0

    def __init__(self, input: Dataset, fn: Callable[..., Any], num_parallel_calls: int | None = None):
        super().__init__(input)
        if not callable(fn):
            raise DataError(f"map: fn must be callable, got {fn!r}")
        self.fn = fn
        self.workers = workers_for("map", num_parallel_calls)
        #: why the latest iteration ran serially although ``workers`` > 1 (None if not)
        self.serial_reason: str | None = None
        self._backoff = Backoff(self.retry_after)

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
        return self._serial(key, start) if self.workers <= 1 else self._probed(key, start)

    def _serial(self, key: Key, start: int) -> Iterator[Any]:
        for index, element in enumerate(self.input._iterate(key, start), start):
            yield self._apply(element, key, index)

    def _probed(self, key: Key, start: int) -> Iterator[Any]:
        """Serially while a :class:`ParallelProbe` times ``fn``, then in threads while they
        pay off; when they do not, serially for about ``retry_after`` seconds of work at
        the measured cost (doubling after each failed probe, at most 64 s; the count
        carries over to the next iteration, so short epochs do not pay a probe each),
        then probed again. ``serial_reason`` says why it ran serially."""
        source, index, backoff = self.input._iterate(key, start), start, self._backoff
        self.serial_reason = backoff.reason if backoff.pause > 0 else None
        try:
            while True:
                if backoff.pause > 0:
                    cost = max(backoff.cost, 1e-9)
                    stretch, done = max(1, int(backoff.pause / cost)), 0
                    for done, element in enumerate(itertools.islice(source, stretch), 1):
                        yield self._apply(element, key, index + done - 1)
                    index += done
                    backoff.pause = 0.0 if done == stretch else backoff.pause - done * cost
                    if done < stretch:
                        return
                probe = self.probe_type(self.workers)
                index, full = yield from self._timed(source, key, index, probe)
                if not full:
                    self.serial_reason = self.serial_reason or probe.ended_early(index - start)
                    return
                if not probe.stay_serial():
                    index = yield from self._parallel(source, key, index, probe)
                self.serial_reason = probe.reason
                if probe.reason is None:        # the threads ran to the end
                    backoff.wait = self.retry_after
                    return
                backoff.failed(probe.cost, probe.reason)
        finally:
            getattr(source, "close", lambda: None)()

    def _timed(self, source: Iterator[Any], key: Key, index: int,
               probe: ParallelProbe) -> Generator[Any, None, tuple[int, bool]]:
        """The probe's serial window: blocks of 1, 2, 4 ... elements applied in the caller,
        each block timed; returns the next index and whether the window filled."""
        full, size = False, 1
        while not full:
            block = list(itertools.islice(source, size))
            if not block:
                break
            began = probe.clock()
            results, error = self._apply_all(block, key, index)
            full = probe.serial_block(probe.clock() - began, len(block))
            index, size = index + len(block), min(2 * size, 256)
            yield from results
            if error is not None:
                raise error
        return index, full

    def _parallel(self, source: Iterator[Any], key: Key, index: int,
                  probe: ParallelProbe) -> Generator[Any, None, int]:
        """Elements from ``index`` on in threads, until ``source`` ends or the probe's
        verdict is False; returns the index the caller continues from."""
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="trainctl-map")
        sizer, pending = ChunkSizer(), collections.deque()
        sizer.record(probe.serial_seconds, probe.serial_elements)
        exhausted = stop = False
        try:
            while pending or not (exhausted or stop):
                while not (exhausted or stop) and len(pending) < 2 * self.workers:
                    chunk = list(itertools.islice(source, sizer.size()))
                    exhausted = len(chunk) == 0
                    if chunk:
                        pending.append(pool.submit(self._apply_chunk, chunk, key, index, sizer, probe))
                        index += len(chunk)
                if pending:
                    results, error = pending.popleft().result()
                    yield from results
                    if error is not None:
                        raise error
                stop = stop or probe.verdict() is False
            return index
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _apply_chunk(self, chunk: list, key: Key, first: int, sizer: ChunkSizer,
                     probe: ParallelProbe) -> tuple[list, BaseException | None]:
        """A worker's :meth:`_apply_all`, timed for the chunk sizer and the probe."""
        started = probe.clock()
        results, error = self._apply_all(chunk, key, first)
        if error is None:
            ended = probe.clock()
            sizer.record(ended - started, len(chunk))
            probe.record_chunk(started, ended, len(chunk))
        return results, error

    def _apply_all(self, chunk: list, key: Key, first: int) -> tuple[list, BaseException | None]:
        """The results of a chunk's elements up to the first error, and that error."""
        results: list = []
        try:
            for offset, element in enumerate(chunk):
                results.append(self._apply(element, key, first + offset))
        except Exception as exc:
            return results, exc
        return results, None

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

    The thread fills the buffer, then sleeps until the consumer has drained it to half
    (:class:`_Buffer`), so a cheap producer wakes once per ``buffer_size // 2`` elements
    rather than once per element (each wake-up is a GIL hand-off and, on a busy machine,
    a wait for a CPU). An exception in the producer is re-raised here at its point in
    the sequence; closing this generator (or dropping it) stops the thread and waits for
    it to end.
    """
    buffer = _Buffer(buffer_size)
    thread = threading.Thread(target=_produce, args=(make, buffer), name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        buffer.close()
        thread.join()    # it ends once its current element is made


class _Buffer:
    """A bounded FIFO between one producer and one consumer, with a low-water mark: a
    producer that found it full waits until at most ``size // 2`` items are left."""

    def __init__(self, size: int):
        self.items: collections.deque = collections.deque()
        self.size, self.low = size, size // 2
        self.cond = threading.Condition()
        self.closed = False

    def put(self, item: Any) -> bool:
        """Append ``item`` (blocking while full); False once the consumer has closed."""
        with self.cond:
            if len(self.items) >= self.size:
                self.cond.wait_for(lambda: self.closed or len(self.items) <= self.low)
            if self.closed:
                return False
            self.items.append(item)
            if len(self.items) == 1:
                self.cond.notify_all()     # the consumer may be waiting for it
            return True

    def get(self) -> Any:
        with self.cond:
            self.cond.wait_for(lambda: self.items)
            item = self.items.popleft()
            if len(self.items) == self.low:
                self.cond.notify_all()     # the producer may be waiting to refill
            return item

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.items.clear()
            self.cond.notify_all()


def _produce(make: Callable[[], Iterator[Any]], buffer: _Buffer) -> None:
    source = None
    try:
        source = make()
        for element in source:
            if not buffer.put((element, None)):
                return
        buffer.put((_END, None))
    except BaseException as exc:  # handed to the consumer, which re-raises it
        buffer.put((None, exc))
    finally:
        getattr(source, "close", lambda: None)()


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
