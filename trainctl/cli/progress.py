"""Progress reporters for ``trainctl train``: a rich progress bar with live loss and
samples/s on a terminal, plain lines otherwise (CI logs, pipes)."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trainctl.train import Callback


def _fmt_record(record: dict) -> str:
    skip = {"epoch", "step", "seconds"}
    parts = []
    for key, value in record.items():
        if key in skip:
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class PlainReporter(Callback):
    """One line per epoch: epoch, losses, metrics, time and samples/s."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs = 0
        self.samples = 0

    def on_train_begin(self, info):
        self.epochs = info["epochs"]
        self.console.print(f"training on {info['device']}: {info['params']} parameters, "
                           f"{info['train_size']} training samples, {self.epochs} epochs", markup=False)

    def on_epoch_begin(self, epoch, steps):
        self.samples = 0

    def on_batch_end(self, step, batch_size, loss):
        self.samples += batch_size

    def on_epoch_end(self, epoch, record):
        secs = record.get("seconds") or 0.0
        rate = self.samples / secs if secs else 0.0
        self.console.print(f"epoch {epoch}/{self.epochs}  {_fmt_record(record)}  "
                           f"{secs:.2f}s  {rate:,.0f} samples/s", markup=False)


class RichReporter(PlainReporter):
    """A live progress bar per epoch with the running loss and samples/s.

    The live loss is read from the device at most every ``refresh`` seconds.
    """

    def __init__(self, console: Console, refresh: float = 0.25):
        super().__init__(console)
        self.refresh = refresh
        self.progress = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.task = None
        self.t0 = 0.0
        self.last = 0.0

    def on_train_begin(self, info):
        super().on_train_begin(info)
        self.running = info.get("running")
        self.progress.start()

    def on_epoch_begin(self, epoch, steps):
        super().on_epoch_begin(epoch, steps)
        self.t0 = self.last = time.perf_counter()
        total = steps if steps and steps > 0 else None
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task("", total=total, epoch=f"{epoch}/{self.epochs}", info="")

    def on_batch_end(self, step, batch_size, loss):
        super().on_batch_end(step, batch_size, loss)
        now = time.perf_counter()
        info = None
        if now - self.last >= self.refresh:
            self.last = now
            rate = self.samples / max(now - self.t0, 1e-9)
            logs = self.running() if self.running else {"loss": loss.item()}
            info = "  ".join(f"{k} {v:.4f}" for k, v in logs.items()) + f"  {rate:,.0f} samples/s"
        if info is None:
            self.progress.advance(self.task)
        else:
            self.progress.update(self.task, advance=1, info=info)

    def on_epoch_end(self, epoch, record):
        self.progress.console.print(f"epoch {epoch}/{self.epochs}  {_fmt_record(record)}  "
                                    f"{record.get('seconds', 0):.2f}s  "
                                    f"{self.samples / max(record.get('seconds') or 1e-9, 1e-9):,.0f} samples/s",
                                    markup=False)

    def on_train_end(self, history):
        self.progress.stop()
