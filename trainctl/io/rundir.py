"""The run directory: ``runs/<name>-<timestamp>/`` with the resolved spec, metrics.jsonl
(and, from the same records, metrics.csv and TensorBoard event files: trainctl.io.records),
run.json and checkpoints/. Created only once a run has been fully prepared, so a spec error never
leaves a directory behind."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from trainctl.io.records import RecordWriters

SPEC_FILE, METRICS_FILE, CHECKPOINTS = "spec.yaml", "metrics.jsonl", "checkpoints"


def default_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """``root/<name>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80] or "run"
    base = Path(root) / f"{safe}-{stamp}"
    path, k = base, 2
    while path.exists():
        path = base.with_name(f"{base.name}-{k}")
        k += 1
    return path


class RunDir:
    """A run directory being written: resolved spec, one JSON line per epoch, checkpoints."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.metrics_lines = 0  # complete lines in metrics.jsonl (what a checkpoint records)
        self.created: Path | None = None  # the topmost folder create() made, if any
        self.records = RecordWriters(self.path, self.read_metrics)  # metrics.csv, TensorBoard

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunDir":
        """An existing run directory (to resume). Raises TrainctlError if it holds no run."""
        from trainctl.errors import TrainctlError

        run = cls(path)
        if not (run.path / SPEC_FILE).is_file():
            raise TrainctlError(f"{str(run.path)!r} is not a run directory (no {SPEC_FILE})")
        try:
            with open(run.path / METRICS_FILE, "rb") as fh:
                run.metrics_lines = fh.read().count(b"\n")
        except FileNotFoundError:
            run.metrics_lines = 0
        return run

    def write_spec(self, spec_yaml: str) -> None:
        """Atomically replace spec.yaml (a resumed run records the spec it continues under)."""
        tmp = self.path / f".{SPEC_FILE}.tmp"
        tmp.write_text(spec_yaml, encoding="utf-8")
        os.replace(tmp, self.path / SPEC_FILE)

    def truncate_metrics(self, lines: int) -> None:
        """Keep the first ``lines`` complete lines of metrics.jsonl (drop what a resumed run
        will write again, and a line cut short by a crash). Atomic: written aside, renamed."""
        file = self.path / METRICS_FILE
        data = file.read_bytes() if file.exists() else b""
        kept = b"".join(data.splitlines(keepends=True)[:lines])
        if not kept.endswith(b"\n"):
            kept = kept[:kept.rfind(b"\n") + 1]
        if kept != data:
            tmp = self.path / f".{METRICS_FILE}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(kept)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        self.metrics_lines = kept.count(b"\n")
        self.records.invalidate()  # metrics.csv and the event files follow at the next record

    def create(self, spec_yaml: str) -> "RunDir":
        """Make the directory (it must not hold a previous run) and write the resolved spec."""
        from trainctl.errors import TrainctlError

        try:
            if (self.path / METRICS_FILE).exists():
                raise TrainctlError(f"run directory {str(self.path)!r} already holds a run; "
                                    f"choose another --run-dir (or --resume it)")
            if self.path.exists() and not self.path.is_dir():
                raise TrainctlError(f"run directory {str(self.path)!r} is a file, not a directory")
            if self.path.is_dir() and any(self.path.iterdir()):
                raise TrainctlError(f"run directory {str(self.path)!r} exists and is not empty; "
                                    f"choose another --run-dir (nothing there was changed)")
            missing = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.created = missing[-1] if missing else None
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.path / f".{SPEC_FILE}.tmp"
            tmp.write_text(spec_yaml, encoding="utf-8")
            os.replace(tmp, self.path / SPEC_FILE)
            (self.path / METRICS_FILE).touch()
        except OSError as exc:
            raise TrainctlError(f"cannot create run directory {str(self.path)!r}: "
                                f"{exc.strerror or exc}") from None
        return self

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one epoch's record as a JSON line (non-finite numbers written as null)."""
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with open(self.path / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean, sort_keys=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # on disk before any checkpoint that counts this line
        self.metrics_lines += 1
        self.records.write(clean)

    def close(self) -> None:
        """Flush and close the TensorBoard event files (metrics.jsonl is always complete)."""
        self.records.close()

    def discard(self) -> None:
        """Remove what :meth:`create` made: the folders it created, or, in a folder that
        existed (empty) before, the files written since."""
        import shutil

        self.records.close()
        if self.created is not None:
            shutil.rmtree(self.created, ignore_errors=True)
        elif self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def read_metrics(self) -> list[dict[str, Any]]:
        with open(self.path / METRICS_FILE, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
