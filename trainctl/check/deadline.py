"""A time limit per spec: ``trainctl smoke --timeout``.

In the main thread of a POSIX process the limit is a real-time interval timer
(``signal.setitimer``) whose SIGALRM raises :class:`SpecTimeout` wherever Python code of an
:meth:`Deadline.interruptible` block is running (outside the autodiff engine, which it lets
return first so its state stays consistent), so a spec that hangs in a data source is
interrupted too. Elsewhere (another thread, Windows) only the cooperative
:meth:`Deadline.check` calls between training steps enforce it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

_ENGINE = os.path.join("trainctl", "autodiff", "")
#: Seconds before the timer fires again when it found the engine running.
RETRY = 0.002


class SpecTimeout(BaseException):
    """A spec ran past its time limit. A BaseException, like KeyboardInterrupt, so library
    code that catches Exception does not swallow it; the check runner catches it."""

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
        self._interruptible = False

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
        if not self._interruptible:
            return  # between two checks: the next check() raises
        f = frame
        while f is not None:
            if _ENGINE in f.f_code.co_filename:
                # never unwind the engine halfway (a tape entered but not registered, a
                # gradient state not restored): try again once it has returned
                signal.setitimer(signal.ITIMER_REAL, RETRY)
                return
            f = f.f_back
        raise SpecTimeout(self.seconds)

    @contextlib.contextmanager
    def interruptible(self):
        """Let the timer interrupt the block (a check), not the bookkeeping around it; the
        block starts with :meth:`check`, so a limit already passed raises at once."""
        self._interruptible = True
        try:
            self.check()
            yield
        finally:
            self._interruptible = False

    def check(self) -> None:
        """Raise SpecTimeout when the time is up (call between steps)."""
        if time.monotonic() > self._end:
            raise SpecTimeout(self.seconds)
