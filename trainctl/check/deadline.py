"""A time limit per spec: ``trainctl smoke --timeout``.

In the main thread of a POSIX process the limit is a real-time interval timer
(``signal.setitimer``) whose SIGALRM raises :class:`SpecTimeout` wherever Python code is
running, so a spec that hangs in a data source is interrupted too. Elsewhere (another
thread, Windows) only the cooperative :meth:`Deadline.check` calls between training
steps enforce it.
"""

from __future__ import annotations

import signal
import threading
import time


class SpecTimeout(Exception):
    """A spec ran past its time limit (not a TrainctlError: the runner catches it)."""

    def __init__(self, seconds: float):
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


class Deadline:
    """``with Deadline(seconds):`` limits the block; ``seconds=None`` means no limit."""

    def __init__(self, seconds: float | None):
        if seconds is not None and not seconds > 0:
            raise ValueError(f"a timeout must be > 0 seconds, got {seconds}")
        self.seconds = seconds
        self._end = float("inf")
        self._old = None
        self._armed = False

    def __enter__(self) -> "Deadline":
        if self.seconds is None:
            return self
        self._end = time.monotonic() + self.seconds
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self._armed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)
            self._armed = False

    def _alarm(self, signum, frame) -> None:
        raise SpecTimeout(self.seconds)

    def check(self) -> None:
        """Raise SpecTimeout when the time is up (call between steps)."""
        if time.monotonic() > self._end:
            raise SpecTimeout(self.seconds)
