"""Callbacks: how the training loop reports progress without printing anything itself,
and how the spec's ``callbacks:`` (early stopping, time budget, non-finite guard) act on it.

The CLI passes a reporter (a rich progress bar, or plain lines when not on a terminal);
tests pass recorders; the spec's callbacks are registered in :data:`spec_callbacks`
(their options are kinds in :mod:`trainctl.spec.kinds.callbacks`) and built by the
Trainer itself. Every hook is optional.
"""

from __future__ import annotations

from typing import Any

from trainctl.autodiff.tensor import Tensor
from trainctl.registry import Registry


class Callback:
    """Hooks called by :class:`~trainctl.train.loop.Trainer`.

    ``on_batch_end`` gets the batch's mean loss as a device Tensor: reading it (``.item()``)
    synchronises with the device, so a reporter should do that only as often as it
    redraws.
    """

    def on_train_begin(self, info: dict[str, Any]) -> None: ...

    def on_epoch_begin(self, epoch: int, steps: int) -> None: ...

    def on_batch_end(self, step: int, batch_size: int, loss: Tensor) -> None: ...

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """The epoch record as written to metrics.jsonl: the history's record plus
        ``input_wait`` (the share of the epoch's training time spent waiting for input)."""

    def on_step_record(self, step: int, record: dict[str, Any]) -> None:
        """A step record was written (``train.log_every_n_steps``, ``eval_every_n_steps``,
        or the last step of a run by steps)."""

    def on_evaluation(self, record: dict[str, Any]) -> None:
        """After each epoch record and each step record holding a validation: where
        monitored values are checked (after ``on_epoch_end`` / ``on_step_record``)."""

    def on_train_complete(self) -> None:
        """Training is complete (all epochs or steps, or stopped early); called before the
        final checkpoint is written, e.g. to restore the best weights."""

    def on_notice(self, message: str) -> None:
        """Something the user should see that is not an error (a skipped batch, a
        rollback, an early stop)."""

    def on_train_end(self, history: list[dict[str, Any]]) -> None: ...


class CallbackList(Callback):
    """Calls each callback in turn."""

    def __init__(self, callbacks):
        self.callbacks = [c for c in callbacks if c is not None]

    def on_train_begin(self, info):
        for c in self.callbacks:
            c.on_train_begin(info)

    def on_epoch_begin(self, epoch, steps):
        for c in self.callbacks:
            c.on_epoch_begin(epoch, steps)

    def on_batch_end(self, step, batch_size, loss):
        for c in self.callbacks:
            c.on_batch_end(step, batch_size, loss)

    def on_epoch_end(self, epoch, record):
        for c in self.callbacks:
            c.on_epoch_end(epoch, record)

    def on_step_record(self, step, record):
        for c in self.callbacks:
            c.on_step_record(step, record)

    def on_evaluation(self, record):
        for c in self.callbacks:
            c.on_evaluation(record)

    def on_train_complete(self):
        for c in self.callbacks:
            c.on_train_complete()

    def on_notice(self, message):
        for c in self.callbacks:
            c.on_notice(message)

    def on_train_end(self, history):
        for c in self.callbacks:
            c.on_train_end(history)


spec_callbacks: Registry[type[Callback]] = Registry("callback")
"""The callbacks a spec can list, by name; each class derives from its kind and is built
as ``cls(config, trainer)``."""
