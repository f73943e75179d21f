"""Checking checkpoints: one checkpoint directory or every checkpoint of a run.

Used by ``trainctl ckpt verify`` (hashes every file) and ``trainctl ckpt ls`` (checks
presence and reads state.json; cheap even for large checkpoints).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from trainctl.errors import CheckpointError
from trainctl.io.checkpoint import POINTERS, STATE, refuse_pickle
from trainctl.io.store import CheckpointStore, Entry, FINAL


@dataclass
class RunCheck:
    """What :func:`check_path` found. ``entries`` oldest first; ``pointers`` maps ``latest``
    / ``best`` to the checkpoint name they hold; ``problems`` are run-level problems (a
    pointer naming a missing checkpoint); ``leftovers`` are temporary directories of
    interrupted writes (harmless; removed on the next resume)."""

    path: Path
    entries: list[Entry]
    pointers: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(e.ok for e in self.entries)


def check_path(path: str | os.PathLike, *, hash_files: bool = True) -> RunCheck:
    """Check a checkpoint directory, a run directory or a run's ``checkpoints/`` folder.

    ``hash_files``: compare every file's SHA-256 with the MANIFEST (else only presence).
    Raises CheckpointError if ``path`` holds no checkpoint at all, or is a pickle file.
    """
    path = Path(path)
    refuse_pickle(path)
    if not path.exists():
        raise CheckpointError(f"{str(path)!r} not found")
    if (path / STATE).is_file():
        store = CheckpointStore(path.parent)
        entry = Entry(path.name, path, -1)
        store.verify(entry, hash_files=hash_files)
        if entry.state is not None:
            entry.step = int(entry.state.get("step", -1))
        return RunCheck(path, [entry])
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    store = CheckpointStore(root)
    entries = [store.verify(e, hash_files=hash_files) for e in store.entries()]
    if not entries:
        raise CheckpointError(f"{str(path)!r} holds no checkpoint (neither a checkpoint "
                              f"directory nor a run directory with checkpoints)")
    result = RunCheck(path, entries, leftovers=[p.name for p in store.iter_temporaries()])
    names = {e.name for e in entries}
    for pointer in POINTERS:
        target = store.pointer(pointer)
        if target is None:
            continue
        result.pointers[pointer] = target
        if target not in names:
            result.problems.append(f"pointer {pointer!r} names {target!r}, which does not exist")
    return result


def describe(entry: Entry) -> dict:
    """A JSON-able summary of a checked entry: name, step, epoch, kind, size, metrics, ok."""
    state = entry.state or {}
    return {"name": entry.name, "step": entry.step, "epoch": state.get("epoch"),
            "kind": state.get("kind", FINAL if entry.name == FINAL else None),
            "bytes": entry.size() if entry.path.is_dir() else 0,
            "metrics": state.get("metrics") or {}, "ok": entry.ok, "problems": entry.problems}
