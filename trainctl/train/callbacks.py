"""Callbacks: how the training loop reports progress without printing anything itself.

The CLI passes a reporter (a rich progress bar, or plain lines when not on a terminal);
tests pass recorders. Every hook is optional.
"""

from __future__ import annotations

from typing import Any

from trainctl.autodiff.tensor import Tensor


class Callback:
    """Hooks called by :class:`~trainctl.train.loop.Trainer`.

    ``on_batch_end`` gets the batch's mean loss as a device Tensor: reading it (``.item()``)
    synchronises with the device, so a reporter should do that only as often as it
    redraws.
    """

    def on_train_begin(self, info: dict[str, Any]) -> None: ...

    def on_epoch_begin(self, epoch: int, steps: int) -> None: ...

    def on_batch_end(self, step: int, batch_size: int, loss: Tensor) -> None: ...

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None: ...

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

    def on_train_end(self, history):
        for c in self.callbacks:
            c.on_train_end(history)
