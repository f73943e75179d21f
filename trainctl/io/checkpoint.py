"""Checkpoints: one directory of safetensors files, a JSON state file and a MANIFEST.
No pickle anywhere; loading never runs code. docs/checkpoints.md describes the format.

Layout of a checkpoint directory::

    weights.safetensors     model variables by name (saved from the CPU)
    optimizer.safetensors   optimizer slots by "<variable>/<slot>" (absent without slots)
    state.json              format, step, epoch, RNG states, data position, ... (JSON)
    MANIFEST                SHA-256 of each file above, in ``sha256sum`` format

A checkpoint is written into a temporary sibling directory (``.<name>.tmp-XXXX``), each
file fsynced, the manifest written last, then the directory is renamed into place and its
parent fsynced: a crash, a full disk or a signal never leaves a half-written checkpoint
under a checkpoint's name. Pointer files (``latest``, ``best``) hold a checkpoint's name and
are replaced atomically the same way.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from trainctl.errors import CheckpointError
from trainctl.io.manifest import MANIFEST, format_manifest, parse_manifest
from trainctl.io.manifest import check_files as check_manifest_files

FORMAT = 2  # format 1 (v0): no MANIFEST, state without rng/data; read by migrate_state
WEIGHTS, OPTIMIZER, STATE = "weights.safetensors", "optimizer.safetensors", "state.json"
POINTERS = ("latest", "best")
#: Test-only hook: seconds each checkpoint file takes to write (in 8 slow chunks), so a
#: test can kill a process in the middle of a checkpoint write.
SLOW_WRITE_ENV = "TRAINCTL_TEST_SLOW_WRITE"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".tar"}


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or a new entry in it survives a power loss."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. platforms that cannot open directories
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (raises OSError, e.g. ENOSPC)."""
    delay = float(os.environ.get(SLOW_WRITE_ENV, "0") or 0)
    with open(path, "xb") as fh:
        if delay > 0:
            step = max(1, len(data) // 8)
            for i in range(0, len(data), step):
                fh.write(data[i:i + step])
                fh.flush()
                time.sleep(delay / 8)
        else:
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def versions() -> dict[str, str]:
    """Versions of what wrote a checkpoint (recorded in state.json; informative only)."""
    import numpy
    import safetensors

    from trainctl import __version__

    return {"trainctl": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def encode_state(state: dict[str, Any]) -> bytes:
    """state.json bytes: sorted keys, floats written exactly (shortest round-trip repr)."""
    return (json.dumps(state, indent=1, sort_keys=True) + "\n").encode("utf-8")


def save_checkpoint(path: str | os.PathLike, weights: dict[str, torch.Tensor],
                    optimizer: tuple[dict[str, torch.Tensor], dict[str, Any]] | None,
                    state: dict[str, Any]) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing an old one).

    ``weights``: variable name → tensor (any device; saved from the CPU); ``optimizer``:
    ``Optimizer.state_dict()`` or None; ``state``: JSON-able run state (step, epoch, ...);
    ``format``, ``optimizer`` (the meta) and ``versions`` are added. Returns the path.
    Raises CheckpointError when the files cannot be written (disk full, no permission):
    then nothing is left behind and the previous checkpoint of that name, if any, is kept.
    """
    path = Path(path)
    blobs = {WEIGHTS: save_bytes(_cpu(weights))}
    meta: dict[str, Any] = {**state, "format": FORMAT, "versions": versions()}
    if optimizer is not None:
        tensors, opt_meta = optimizer
        meta["optimizer"] = opt_meta
        if tensors:
            blobs[OPTIMIZER] = save_bytes(_cpu(tensors))
    blobs[STATE] = encode_state(meta)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        digests = {}
        for name, data in blobs.items():
            write_file(tmp / name, data)
            digests[name] = hashlib.sha256(data).hexdigest()
        write_file(tmp / MANIFEST, format_manifest(digests).encode("ascii"))
        _usual_permissions(tmp)
        fsync_dir(tmp)
        _rename_into_place(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        hint = " (disk full)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: "
                              f"{exc.strerror or exc}{hint}; nothing was written") from None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _usual_permissions(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; give it and its files the modes any other
    file of the run gets (0777 / 0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~mask)


def _rename_into_place(tmp: Path, path: Path) -> None:
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def write_pointer(file: Path, target: str) -> None:
    """Atomically make the pointer ``file`` hold ``target`` (a checkpoint's name)."""
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(target + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write {str(file)!r}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(file.parent)


def read_pointer(file: Path) -> str | None:
    """The checkpoint name a pointer file holds, or None if it is absent or unreadable."""
    try:
        name = file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if name and "/" not in name and not name.startswith(".") else None


def refuse_pickle(path: Path) -> None:
    """Raise CheckpointError if ``path`` is a file that looks pickle-based (torch.save,
    pickle, joblib): such files can run arbitrary code when loaded, so they never are."""
    if not path.is_file():
        return
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        head = b""
    looks = path.suffix.lower() in PICKLE_SUFFIXES or head[:1] == b"\x80" or head == b"PK\x03\x04"
    if looks:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it is a pickle-based file (torch.save / pickle), "
            f"and loading one can run arbitrary code. trainctl reads only checkpoint "
            f"directories of safetensors files; convert trusted weights with "
            f"safetensors.torch.save_file")


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from a checkpoint path, a pointer file (``latest``, ``best``)
    or a run directory (its ``final`` checkpoint, else the one ``latest`` names).

    Raises CheckpointError when none is there, or for a pickle-based file.
    """
    path = Path(path)
    try:
        return _find_checkpoint(path)
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc.strerror or exc}") from None


def _find_checkpoint(path: Path) -> Path:
    refuse_pickle(path)
    if path.is_file() and path.name in POINTERS:
        name = read_pointer(path)
        if name is not None and (path.parent / name / STATE).is_file():
            return path.parent / name
    ckpts = path / "checkpoints"
    latest = read_pointer(ckpts / "latest")
    candidates = [path, ckpts / "final"] + ([ckpts / latest] if latest else [])
    for candidate in candidates:
        if (candidate / STATE).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    raise CheckpointError(f"{str(path)!r} is not a checkpoint (no {STATE} and {WEIGHTS}) nor a "
                          f"run directory with checkpoints")


def read_state(ckpt: Path) -> dict[str, Any]:
    """state.json of a checkpoint directory, migrated to the current format.

    Raises CheckpointError for an unreadable file or an unknown format.
    """
    try:
        with open(ckpt / STATE, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{ckpt / STATE}: cannot read: {exc}") from None
    return migrate_state(state, ckpt / STATE)


def migrate_state(state: Any, where: Path | str = STATE) -> dict[str, Any]:
    """Bring a state dict of any known format to :data:`FORMAT` (the one place that knows
    old formats). Format 1 (v0 final checkpoints) had no RNG, data position or versions:
    they load as weights and optimizer state only. Raises CheckpointError otherwise."""
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt == FORMAT:
        return state
    if fmt == 1:
        out = dict(state)
        out["format"] = FORMAT
        out.setdefault("versions", {"torch": out.pop("torch", "unknown")})
        return out
    raise CheckpointError(f"{where}: unknown checkpoint format "
                          f"{fmt if isinstance(state, dict) else state!r} (this trainctl reads "
                          f"formats 1 and {FORMAT})")


def verify_files(ckpt: Path, *, hash_files: bool = True) -> list[str]:
    """Problems of a checkpoint directory's files against its MANIFEST (empty: valid).

    A format-1 checkpoint (no MANIFEST) has nothing to check against and passes.
    """
    manifest = ckpt / MANIFEST
    if not manifest.is_file():
        try:
            legacy = json.loads((ckpt / STATE).read_text(encoding="utf-8")).get("format") == 1
        except (OSError, ValueError, AttributeError):
            legacy = False
        return [] if legacy else [f"{MANIFEST}: missing (incomplete checkpoint)"]
    try:
        digests = parse_manifest(manifest.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [f"{MANIFEST}: unreadable ({exc})"]
    problems = [f"{name}: not listed in {MANIFEST}" for name in (STATE, WEIGHTS)
                if name not in digests]
    return problems + check_manifest_files(ckpt, digests, hash_files=hash_files)


def load_checkpoint(path: str | os.PathLike, verify: bool = True
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Read (weights, optimizer tensors or None, state) from a checkpoint, a pointer file or a
    run directory. Tensors are loaded on the CPU, whatever device they were saved from.

    With ``verify``, every file is checked against the MANIFEST first. Raises
    CheckpointError for a missing, pickle-based, corrupt (checksum) or unreadable file, or
    an unknown format.
    """
    ckpt = find_checkpoint(path)
    if verify:
        problems = verify_files(ckpt)
        if problems:
            raise CheckpointError(f"checkpoint {str(ckpt)!r} is corrupt: {'; '.join(problems)}")
    state = read_state(ckpt)
    weights = load_tensors(ckpt / WEIGHTS)
    opt = load_tensors(ckpt / OPTIMIZER) if (ckpt / OPTIMIZER).exists() else None
    if opt is None and isinstance(state.get("optimizer"), dict):
        opt = {}
    return weights, opt, state


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as CPU tensors; CheckpointError if it is not one (pickles included)."""
    if file.suffix != ".safetensors":
        refuse_pickle(file)
    try:
        return load_bytes(file.read_bytes())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{file}: not a valid safetensors file ({exc})") from None


__all__ = ["FORMAT", "WEIGHTS", "OPTIMIZER", "STATE", "MANIFEST", "save_checkpoint",
           "load_checkpoint", "find_checkpoint", "read_state", "verify_files", "write_pointer",
           "read_pointer", "refuse_pickle", "load_tensors", "migrate_state"]
