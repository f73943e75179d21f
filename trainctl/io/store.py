"""The checkpoints of one run: ``<run>/checkpoints/``.

::

    checkpoints/
      step-000000120/   a checkpoint (see trainctl.io.checkpoint), named by its step
      step-000000240/
      final/            written when training completes
      latest            pointer file: the name of the newest complete checkpoint
      best              pointer file: the checkpoint with the best monitored metric

Order of a save: the new checkpoint is complete (renamed into place), then ``latest`` is
replaced, then ``best`` if it improved, and only then old checkpoints beyond ``keep_last``
are pruned (never the ones ``latest`` or ``best`` name). A pruned checkpoint is first
renamed to a hidden name, so a crash while deleting never leaves a half-deleted
directory under a checkpoint's name.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from trainctl.errors import CheckpointError
from trainctl.io.checkpoint import (POINTERS, STATE, read_pointer, read_state, save_checkpoint,
                                    verify_files, write_pointer)

_STEP_NAME = re.compile(r"step-(\d+)")
FINAL = "final"


def step_name(step: int) -> str:
    """The directory name of the checkpoint at ``step``: ``step-000000120``."""
    return f"step-{step:09d}"


@dataclass
class Entry:
    """One checkpoint of a run (as found on disk; not yet verified)."""

    name: str
    path: Path
    step: int
    problems: list[str] = field(default_factory=list)
    state: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def size(self) -> int:
        """Bytes of the checkpoint's files."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())


class CheckpointStore:
    """The ``checkpoints/`` folder of a run directory (created on first save)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ---- reading -------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """Every checkpoint directory (``step-N`` and ``final``), oldest first (by step;
        ``final`` after a ``step-N`` of the same step). Hidden temporary directories are
        never entries."""
        found = []
        if not self.root.is_dir():
            return found
        for path in self.root.iterdir():
            if not path.is_dir() or path.name.startswith("."):
                continue
            match = _STEP_NAME.fullmatch(path.name)
            if match:
                found.append(Entry(path.name, path, int(match.group(1))))
            elif path.name == FINAL:
                found.append(Entry(path.name, path, self._step_of(path)))
        return sorted(found, key=lambda e: (e.step, e.name == FINAL))

    @staticmethod
    def _step_of(path: Path) -> int:
        try:
            return int(read_state(path).get("step", -1))
        except Exception:  # noqa: BLE001 - a corrupt final sorts first and fails verification
            return -1

    def verify(self, entry: Entry, *, hash_files: bool = True) -> Entry:
        """Fill ``entry.problems`` (checksums against the MANIFEST) and ``entry.state``."""
        entry.problems = verify_files(entry.path, hash_files=hash_files)
        if not entry.problems:
            try:
                entry.state = read_state(entry.path)
            except Exception as exc:  # noqa: BLE001 - reported as a problem of this entry
                entry.problems = [f"{STATE}: {exc}"]
        return entry

    def newest_valid(self) -> tuple[Entry | None, list[Entry]]:
        """(the newest checkpoint whose files match their MANIFEST, or None; the newer ones
        that failed verification, newest first, each with its problems)."""
        skipped = []
        for entry in reversed(self.entries()):
            if self.verify(entry).ok:
                return entry, skipped
            skipped.append(entry)
        return None, skipped

    def pointer(self, name: str) -> str | None:
        """The checkpoint name the pointer ``latest`` or ``best`` holds (None if unset)."""
        return read_pointer(self.root / name)

    def iter_temporaries(self) -> Iterator[Path]:
        """Hidden leftovers of interrupted writes (``.<name>.tmp-*``, ``.<name>.old-*``)."""
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(".") and (".tmp-" in path.name or ".old-" in path.name
                                                  or ".trash-" in path.name):
                    yield path

    # ---- writing -------------------------------------------------------------------
    def save(self, name: str, weights, optimizer, state: dict[str, Any], *, best: bool = False,
             keep_last: int | None = None) -> Path:
        """Write checkpoint ``name`` atomically, point ``latest`` (and ``best`` if ``best``)
        at it, then prune to ``keep_last`` step checkpoints. Raises CheckpointError."""
        path = save_checkpoint(self.root / name, weights, optimizer, state)
        write_pointer(self.root / "latest", name)
        if best:
            write_pointer(self.root / "best", name)
        if keep_last is not None:
            try:
                self.prune(keep_last)
            except OSError as exc:
                raise CheckpointError(f"checkpoint {name} written, but pruning old ones failed: "
                                      f"{exc.strerror or exc}") from None
        return path

    def set_pointer(self, pointer: str, name: str) -> None:
        if pointer not in POINTERS:
            raise ValueError(f"unknown pointer {pointer!r}; known: {', '.join(POINTERS)}")
        write_pointer(self.root / pointer, name)

    def prune(self, keep_last: int) -> list[str]:
        """Delete all but the newest ``keep_last`` ``step-N`` checkpoints, sparing those the
        pointers name. Returns the names deleted."""
        protect = {self.pointer(p) for p in POINTERS}
        steps = [e for e in self.entries() if e.name != FINAL]
        doomed = [e for e in steps[:max(0, len(steps) - keep_last)] if e.name not in protect]
        for entry in doomed:
            self._remove(entry.path)
        return [e.name for e in doomed]

    def clean_temporaries(self) -> list[str]:
        """Remove leftovers of interrupted writes; returns their names. A complete checkpoint
        set aside while being replaced (``.<name>.old-*``) whose new version never arrived
        is put back under its name instead."""
        names = []
        for path in list(self.iter_temporaries()):
            original = self.root / path.name[1:].rsplit(".old-", 1)[0]
            if ".old-" in path.name and path.is_dir() and not original.exists():
                os.replace(path, original)
                names.append(path.name)
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            names.append(path.name)
        return names

    def _remove(self, path: Path) -> None:
        trash = path.with_name(f".{path.name}.trash-{os.getpid()}")
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
