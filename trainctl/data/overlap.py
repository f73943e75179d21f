"""Whether a parallel map pays off, measured on the first elements of each iteration.

Threads speed a map up only by the part of ``fn`` that runs without the GIL (Pillow's
decoding and resampling, numpy and torch kernels on large enough arrays, file reads),
and only while a CPU is free for the second thread. Neither can be known in advance, so
:class:`ParallelProbe` measures it: the caller first applies ``fn`` alone and times it
(the serial cost per element), then the worker threads time their chunks, and the speed
the threads achieved together is compared with the serial cost. When threads do not pay
(too little work per element, ``fn`` holding the GIL, or no idle CPU) the map finishes
the iteration serially, which is never slower than serial by more than the measuring.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class ParallelProbe:
    """Decides, from the first elements of one iteration, whether ``workers`` threads map
    faster than the caller alone. All times are seconds on ``clock`` (a fake one in tests).

    1. Serial window: the caller applies ``fn`` to blocks of 1, 2, 4 ... elements and
       times each block (:meth:`serial_block`; a clock read per block, not per element);
       the first block is left out (imports, caches, lazy setup). Once at least 2 calls
       and ``serial_window`` seconds are timed, the serial cost per element ``c`` is
       their mean. If ``c < min_cost`` (:meth:`stay_serial`) the iteration stays serial: thread
       hand-offs and GIL switches cost microseconds each, which such work cannot repay.
    2. Parallel window: the workers report each chunk as ``(start, end, elements)``
       (:meth:`record_chunk`). Once the time during which at least one worker was busy
       (the union of the chunks' intervals, so time the workers wait for the consumer
       does not count) reaches ``parallel_window`` and ``2 * workers`` chunks are done,
       the achieved speed-up is ``s = elements * c / busy``. :meth:`verdict` is then True
       (keep the threads) if ``s >= min_speedup``, else False: the map finishes serially.

    ``reason`` holds why it stays serial (one line, for ``trainctl data bench``), and
    ``speedup`` the measured ``s``. The defaults are the map's; ``min_speedup`` 1.2 is
    above the run-to-run noise of one 50 ms window on a busy machine.
    """

    def __init__(self, workers: int, clock: Callable[[], float] = time.perf_counter,
                 serial_window: float = 0.02, parallel_window: float = 0.05,
                 min_cost: float = 20e-6, min_speedup: float = 1.2):
        self.workers, self.clock = workers, clock
        self.serial_window, self.parallel_window = serial_window, parallel_window
        self.min_cost, self.min_speedup = min_cost, min_speedup
        self.blocks = self.serial_elements = 0
        self.serial_seconds = 0.0
        self.spans: list[tuple[float, float, int]] = []
        self.lock = threading.Lock()
        self.decided: bool | None = None
        self.reason: str | None = None
        self.speedup: float | None = None

    @property
    def cost(self) -> float:
        """Mean serial seconds per element (0 before a call was timed)."""
        return self.serial_seconds / self.serial_elements if self.serial_elements else 0.0

    def serial_block(self, seconds: float, elements: int) -> bool:
        """Record a block of ``elements`` calls timed together in the caller; True once
        the serial window is full. The first block is left out (warm-up)."""
        self.blocks += 1
        if self.blocks > 1:
            self.serial_seconds += seconds
            self.serial_elements += elements
        return self.serial_elements >= 2 and self.serial_seconds >= self.serial_window

    def ended_early(self, elements: int) -> str:
        """The reason for an iteration that ended inside the serial window."""
        self.reason = (f"the iteration ended after {elements} elements, within the first "
                       f"{self.serial_window * 1e3:g} ms of work timed before starting threads")
        return self.reason

    def stay_serial(self) -> bool:
        """After the serial window: True (and ``reason``) if an element costs too little."""
        if self.cost < self.min_cost:
            self.reason = (f"{self.cost * 1e6:.1f} µs of work per element is below "
                           f"{self.min_cost * 1e6:g} µs, too little to share between threads")
            self.decided = False
        return self.decided is False

    def record_chunk(self, start: float, end: float, elements: int) -> None:
        """A worker's chunk of ``elements`` ran from ``start`` to ``end`` (thread-safe)."""
        if self.decided is None:
            with self.lock:
                self.spans.append((start, end, elements))

    def busy(self) -> tuple[float, int, int]:
        """(seconds during which at least one worker ran a chunk, elements, chunks)."""
        with self.lock:
            spans = sorted(self.spans)
        total, elements, reach = 0.0, 0, float("-inf")
        for start, end, count in spans:
            elements += count
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total, elements, len(spans)

    def verdict(self) -> bool | None:
        """None while measuring; then True to keep the threads, False to finish serially
        (with ``reason``). Decided once per probe."""
        if self.decided is not None:
            return self.decided
        busy, elements, chunks = self.busy()
        if busy < self.parallel_window or chunks < 2 * self.workers:
            return None
        self.speedup = elements * self.cost / busy
        self.decided = self.speedup >= self.min_speedup
        if not self.decided:
            self.reason = (f"{self.workers} threads ran the first {elements} elements at "
                           f"{self.speedup:.2f}x the serial speed (below {self.min_speedup:g}x: "
                           "the function holds the GIL or no CPU is idle)")
        return self.decided


class Backoff:
    """A parallel map's serial work left before its next probe (``pause`` seconds, at
    ``cost`` seconds an element), the pause after the next failed probe (``wait``:
    doubled by each failure, at most 64 s) and the last failed probe's ``reason``. Kept on
    the map, so it carries over from one iteration to the next."""

    def __init__(self, wait: float):
        self.pause, self.wait, self.cost = 0.0, wait, 0.0
        self.reason: str | None = None

    def failed(self, cost: float, reason: str | None) -> None:
        self.pause, self.wait = self.wait, min(2 * self.wait, 64.0)
        self.cost, self.reason = cost, reason
