"""Progress reporters for ``trainctl train`` (callbacks; the library prints nothing):

- :class:`RichReporter` on a terminal: a bar over the whole run (epochs, or steps for a run
  by steps) and one over the epoch's steps, each with its ETA, samples/s and the running
  loss and metrics (read from the device at most every ``refresh`` seconds);
- :class:`PlainReporter` otherwise (pipes, CI logs): one line per epoch and per step record;
- :class:`JsonReporter` (``--log-format json``): one JSON object per line, for scripts:
  ``{"kind": "start", ...}``, every step and epoch record as written to metrics.jsonl
  (``"kind": "step"`` / ``"epoch"``), ``{"kind": "notice", "message": ...}``, and the
  command adds ``{"kind": "test", ...}`` and ``{"kind": "end", "run_dir": ..., "status": ...}``.

Non-finite numbers are written as null in JSON, like in metrics.jsonl.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from trainctl.cli.common import auto_device_words, counted
from trainctl.train import Callback

SKIP = {"kind", "epoch", "step", "seconds", "input_wait"}  # text lines: values only


def _fmt_record(record: dict) -> str:
    parts = []
    for key, value in record.items():
        if key in SKIP:
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


def json_line(obj: dict[str, Any]) -> str:
    """``obj`` as one line of strict JSON (NaN and infinities as null)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in obj.items()}
    return json.dumps(clean, default=str)


class PlainReporter(Callback):
    """One line per epoch (losses, metrics, time, samples/s) and per step record."""

    def __init__(self, console: Console):
        self.console = console
        self.epochs: int | None = None
        self.samples = 0

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def on_train_begin(self, info):
        self.epochs = info.get("epochs")
        steps = info.get("steps")
        length = counted(steps, "step") if steps else counted(self.epochs, "epoch")
        auto = f" ({auto_device_words(info['device'])})" if info.get("device_auto") else ""
        self.say(f"training on {info['device']}: {info['params']} parameters, "
                 f"{info['train_size']} training samples, {length}{auto}")

    def _of(self, epoch: int) -> str:
        return f"{epoch}/{self.epochs}" if self.epochs else str(epoch)

    def on_epoch_begin(self, epoch, steps):
        self.samples = 0

    def on_batch_end(self, step, batch_size, loss):
        self.samples += batch_size

    def on_step_record(self, step, record):
        self.say(f"step {step} (epoch {record.get('epoch')})  {_fmt_record(record)}")

    def on_epoch_end(self, epoch, record):
        secs = record.get("seconds") or 0.0
        rate = self.samples / secs if secs else 0.0
        self.say(f"epoch {self._of(epoch)}  {_fmt_record(record)}  {secs:.2f}s  "
                 f"{rate:,.0f} samples/s")

    def on_notice(self, message):
        self.say(f"note: {message}")


class JsonReporter(Callback):
    """One JSON object per line: start, every step and epoch record, notices."""

    def __init__(self, console: Console):
        self.console = console

    def emit(self, obj: dict[str, Any]) -> None:
        self.console.print(json_line(obj), markup=False, highlight=False, soft_wrap=True)

    def on_train_begin(self, info):
        self.emit({"kind": "start", **{k: v for k, v in info.items() if k != "running"}})

    def on_step_record(self, step, record):
        self.emit(record)

    def on_epoch_end(self, epoch, record):
        self.emit(record)

    def on_notice(self, message):
        self.emit({"kind": "notice", "message": message})


class RichReporter(PlainReporter):
    """A bar over the run and one over the epoch, with ETA, samples/s and live metrics."""

    def __init__(self, console: Console, refresh: float = 0.25):
        super().__init__(console)
        self.refresh = refresh
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=True)
        self.run_task = self.task = None
        self.by_steps = False
        self.t0 = self.last = 0.0
        self.running = None

    def say(self, text: str) -> None:
        self.progress.console.print(text, markup=False, highlight=False)

    def on_train_begin(self, info):
        super().on_train_begin(info)
        self.running = info.get("running")
        self.by_steps = bool(info.get("steps"))
        total = info.get("steps") if self.by_steps else self.epochs
        done = info.get("initial_step" if self.by_steps else "initial_epoch") or 0
        self.progress.start()
        self.run_task = self.progress.add_task("steps" if self.by_steps else "epochs",
                                               total=total, completed=done, info="")

    def on_epoch_begin(self, epoch, steps):
        super().on_epoch_begin(epoch, steps)
        self.t0 = self.last = time.perf_counter()
        total = steps if steps and steps > 0 else None
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"epoch {self._of(epoch)}", total=total, info="")

    def on_batch_end(self, step, batch_size, loss):
        super().on_batch_end(step, batch_size, loss)
        if self.by_steps:
            self.progress.advance(self.run_task)
        now = time.perf_counter()
        if now - self.last < self.refresh:
            self.progress.advance(self.task)
            return
        self.last = now
        rate = self.samples / max(now - self.t0, 1e-9)
        logs = self.running() if self.running else {"loss": loss.item()}
        info = "  ".join(f"{k} {v:.4f}" for k, v in logs.items()) + f"  {rate:,.0f} samples/s"
        self.progress.update(self.task, advance=1, info=info)

    def on_epoch_end(self, epoch, record):
        super().on_epoch_end(epoch, record)
        if not self.by_steps:
            self.progress.advance(self.run_task)

    def on_train_end(self, history):
        self.progress.stop()


def reporter(console: Console, log_format: str = "text", quiet: bool = False,
             terminal: bool = False) -> Callback | None:
    """The reporter for the command line's choices: none when ``quiet``, JSON lines for
    ``log_format == "json"``, else the rich bars on a ``terminal`` and plain lines off one."""
    if quiet:
        return None
    if log_format == "json":
        return JsonReporter(console)
    return RichReporter(console) if terminal else PlainReporter(console)


class RunOutput:
    """What ``trainctl train`` prints on stdout, by the command line's choices: progress
    (:meth:`reporter`), lines for people (:meth:`line`) and results (:meth:`event`: a JSON
    object with ``--log-format json``, a line of text otherwise); nothing with ``--quiet``."""

    def __init__(self, console: Console, log_format: str = "text", quiet: bool = False,
                 terminal: bool = False):
        self.console, self.log_format, self.quiet, self.terminal = console, log_format, quiet, terminal

    def reporter(self) -> Callback | None:
        return reporter(self.console, self.log_format, self.quiet, self.terminal)

    def line(self, text: str) -> None:
        if not self.quiet and self.log_format == "text":
            self.console.print(text, markup=False, highlight=False)

    def event(self, obj: dict[str, Any], text: str) -> None:
        if self.quiet:
            return
        if self.log_format == "json":
            self.console.print(json_line(obj), markup=False, highlight=False, soft_wrap=True)
        else:
            self.console.print(text, markup=False, highlight=False)
