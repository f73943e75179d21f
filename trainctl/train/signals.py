"""Signals during training: what SIGINT, SIGTERM, SIGHUP and SIGUSR1 do (the spec's
``checkpoint.signals``, like Caffe's ``-sigint_effect`` / ``-sighup_effect``).

Actions: ``snapshot`` (write a checkpoint after the current step, keep going), ``stop``
(stop after the current step), ``snapshot_and_stop`` (both), ``none`` (ignore). The
handler only records the request; the trainer acts between two steps, so a step is never
cut in half. A second stopping signal while a stop is pending raises :class:`SignalExit`
at once: a checkpoint being written is abandoned (its temporary directory removed), so no
partial checkpoint is left. A process stopped by a signal exits with 128 + its number
(130 for SIGINT, 143 for SIGTERM), as a shell reports it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = {name: getattr(signal, name.upper()) for name in ("sigint", "sigterm", "sighup", "sigusr1")
           if hasattr(signal, name.upper())}


class SignalExit(KeyboardInterrupt):
    """Raised by a second stopping signal: leave now. ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code(signum: int) -> int:
    """The shell's exit status of a process ended by ``signum`` (128 + its number)."""
    return 128 + int(signum)


@contextlib.contextmanager
def handle_signals(trainer, actions) -> Iterator[None]:
    """Install the handlers ``actions`` asks for (a ``SignalsConfig``, or a mapping of
    lower-case signal name → action) for the duration of the block, then restore the old
    ones. Does nothing outside the main thread (Python delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    table = dict(actions) if isinstance(actions, dict) else actions.model_dump()
    by_number = {SIGNALS[name]: action for name, action in table.items() if name in SIGNALS}

    def on_signal(signum, frame):
        action = by_number[signum]
        if action == "snapshot":
            trainer.request_snapshot()
            return
        if "stop" in trainer.requests:
            raise SignalExit(signum)
        trainer.request_stop(snapshot=action == "snapshot_and_stop", signum=signum)

    previous = {}
    try:
        for signum, action in by_number.items():
            previous[signum] = signal.signal(signum,
                                             signal.SIG_IGN if action == "none" else on_signal)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
