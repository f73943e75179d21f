"""The run directory: ``runs/<name>-<timestamp>/`` with the resolved spec, metrics.jsonl
and checkpoints/. Created only once a run has been fully prepared, so a spec error never
leaves a directory behind."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

SPEC_FILE, METRICS_FILE, CHECKPOINTS = "spec.yaml", "metrics.jsonl", "checkpoints"


def default_run_dir(name: str, root: str | os.PathLike = "runs") -> Path:
    """``root/<name>-<YYYYmmdd-HHMMSS>``, with ``-2``, ``-3``... if that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "run"
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

    def create(self, spec_yaml: str) -> "RunDir":
        """Make the directory (it must not hold a previous run) and write the resolved spec."""
        from trainctl.errors import TrainctlError

        if (self.path / METRICS_FILE).exists():
            raise TrainctlError(f"run directory {str(self.path)!r} already holds a run; "
                                f"choose another --run-dir")
        try:
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

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def read_metrics(self) -> list[dict[str, Any]]:
        with open(self.path / METRICS_FILE, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
