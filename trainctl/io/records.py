"""What a run directory records besides its checkpoints and metrics.jsonl:

- ``metrics.csv``: the same records as metrics.jsonl, one row each, under a header that is
  the union of their keys (in order of first appearance; an empty cell where a record has
  no such key, or a non-finite value);
- ``tensorboard/train`` and ``tensorboard/validation``: TensorBoard event files, written
  with ``torch.utils.tensorboard.SummaryWriter`` (needs the ``tensorboard`` package): every
  number of a record as scalar ``<kind>/<key>`` (``epoch/loss``, ``step/accuracy``) at its
  global ``step``; ``val_<key>`` goes to the validation writer under ``<kind>/<key>``, so
  TensorBoard draws train and validation in one chart;
- ``run.json``: start and end time, ``status`` (``running``, ``completed``, ``failed``,
  ``interrupted``), versions, device, spec hash, data fingerprint and git commit (see
  :func:`start_run`).

metrics.jsonl is the source: :class:`RecordWriters` takes every record appended to it, and
rebuilds the CSV and the event files from it in full the first time it writes in a process
and after a resume truncated it, so the three always hold the same records.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

CSV_FILE, TENSORBOARD_DIR, RUN_FILE = "metrics.csv", "tensorboard", "run.json"
STATUSES = ("running", "completed", "failed", "interrupted")
NOT_SCALARS = ("kind", "epoch", "step")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class RecordWriters:
    """metrics.csv and the TensorBoard event files of the run directory at ``path``.

    :meth:`write` takes each record after it is appended to metrics.jsonl; ``source`` is a
    function returning every record of metrics.jsonl (for the rebuilds). :meth:`close`
    flushes and closes the event files.
    """

    def __init__(self, path: str | os.PathLike, source):
        self.path = Path(path)
        self.source = source
        self.header: list[str] | None = None  # None: rebuild from metrics.jsonl at next write
        self._tb: dict[str, Any] = {}
        self._last_flush = 0.0
        self.tensorboard_error: str | None = None

    # ---- the public side ----------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        """Add ``record`` (already in metrics.jsonl) to the CSV and the event files."""
        if self.header is None or any(k not in self.header for k in record):
            self.rebuild()  # first write of this process, or a new column for the CSV
            return
        with open(self.path / CSV_FILE, "a", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(self._row(record))
        self._tb_add(record)
        if record.get("kind", "epoch") == "epoch" or time.monotonic() - self._last_flush > 5:
            self.flush()

    def rebuild(self) -> None:
        """Write the CSV and the event files anew from every record of metrics.jsonl."""
        records = list(self.source())
        self.header = []
        for record in records:
            self.header += [k for k in record if k not in self.header]
        self._csv_rewrite(records)
        self._tb_close()
        shutil.rmtree(self.path / TENSORBOARD_DIR, ignore_errors=True)
        for record in records:
            self._tb_add(record)
        self.flush()

    def invalidate(self) -> None:
        """metrics.jsonl changed under us (a resume truncated it): rebuild at next write."""
        self._tb_close()
        self.header = None

    def flush(self) -> None:
        for writer in self._tb.values():
            writer.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        self._tb_close()

    # ---- metrics.csv --------------------------------------------------------------------
    def _row(self, record: dict[str, Any]) -> list[str]:
        out = []
        for key in self.header:
            value = record.get(key)
            if isinstance(value, float):
                out.append(repr(value) if math.isfinite(value) else "")
            else:
                out.append("" if value is None else str(value))
        return out

    def _csv_rewrite(self, records: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self._row(r) for r in records)
        tmp = self.path / f".{CSV_FILE}.tmp"
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.replace(tmp, self.path / CSV_FILE)

    # ---- TensorBoard --------------------------------------------------------------------
    def _writer(self, split: str):
        if split not in self._tb and self.tensorboard_error is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # the tensorboard package is a dependency; be kind
                self.tensorboard_error = f"no TensorBoard event files: {exc}"
                return None
            self._tb[split] = SummaryWriter(str(self.path / TENSORBOARD_DIR / split),
                                            flush_secs=30)
        return self._tb.get(split)

    def _tb_add(self, record: dict[str, Any]) -> None:
        step = record.get("step")
        if not isinstance(step, int):
            return
        kind = record.get("kind", "epoch")
        for key, value in record.items():
            number = _number(value)
            if key in NOT_SCALARS or number is None:
                continue
            split, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            writer = self._writer(split)
            if writer is not None:
                writer.add_scalar(f"{kind}/{name}", number, global_step=step)

    def _tb_close(self) -> None:
        for writer in self._tb.values():
            writer.close()
        self._tb = {}


# ---- run.json ------------------------------------------------------------------------------

def now_iso() -> str:
    """The current UTC time, ISO 8601 with seconds (``2026-01-31T12:00:00Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def environment() -> dict[str, str]:
    """Versions of Python, torch, numpy and trainctl, and the platform."""
    import numpy
    import torch

    import trainctl

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "trainctl": trainctl.__version__,
            "platform": platform.platform()}


def git_commit(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"commit": SHA, "dirty": bool}`` of the git work tree holding ``path`` (dirty:
    tracked files differ from the commit), or None outside a work tree or without git."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain",
                                 "--untracked-files=no"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(),
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def read_run(path: str | os.PathLike) -> dict[str, Any] | None:
    """The run.json of the run directory ``path`` (None if it has none or it is unreadable)."""
    try:
        data = json.loads((Path(path) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_run(path: Path, data: dict[str, Any]) -> None:
    tmp = path / f".{RUN_FILE}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path / RUN_FILE)


def start_run(path: str | os.PathLike, details: dict[str, Any]) -> float:
    """Write run.json with ``status: running``, ``start_time`` (kept from an earlier run.json
    when the run is resumed; each resume is added to ``resumed``), ``argv`` and
    ``details`` (device, spec hash, data fingerprint, versions, git: see
    ``trainctl.train.runinfo``). Returns this process's start (``time.time()``), for
    :func:`finish_run`."""
    path = Path(path)
    old = read_run(path) or {}
    data = {"status": "running", "start_time": old.get("start_time") or now_iso(),
            "end_time": None, "duration_seconds": old.get("duration_seconds"),
            "argv": list(sys.argv), **details}
    if old:
        data["resumed"] = [*old.get("resumed", []), now_iso()]
    _write_run(path, data)
    return time.time()


def finish_run(path: str | os.PathLike, status: str, started: float | None = None,
               error: str | None = None) -> dict[str, Any] | None:
    """Set ``status`` (one of :data:`STATUSES`), ``end_time`` and ``duration_seconds`` (the
    seconds of every process that ran the run, added up; ``started`` is this process's
    ``time.time()`` at :func:`start_run`) and ``error`` in run.json. Returns the new
    content, or None when the run has no run.json."""
    if status not in STATUSES:
        raise ValueError(f"run status must be one of {STATUSES}, got {status!r}")
    path = Path(path)
    data = read_run(path)
    if data is None:
        return None
    spent = time.time() - started if started is not None else 0.0
    data.update(status=status, end_time=now_iso(),
                duration_seconds=round((data.get("duration_seconds") or 0.0) + spent, 3))
    if error is not None:
        data["error"] = error
    _write_run(path, data)
    return data


def records_of(path: str | os.PathLike) -> Iterable[dict[str, Any]]:
    """The records of the metrics.jsonl at ``path`` (skipping a line cut short by a crash)."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
