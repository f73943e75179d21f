"""Checkpoints: a directory holding weights and optimizer state as safetensors plus a JSON
state file. No pickle anywhere; loading never runs code.

Layout of a checkpoint directory::

    weights.safetensors     model variables by name (float tensors, saved from the CPU)
    optimizer.safetensors   optimizer slots by "<variable>/<slot>"
    state.json              format, step, epoch, seed, optimizer meta, spec hash, versions

A checkpoint is written into a temporary sibling directory and renamed into place, so a
crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trainctl.errors import CheckpointError

FORMAT = 1
WEIGHTS, OPTIMIZER, STATE = "weights.safetensors", "optimizer.safetensors", "state.json"


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path: str | os.PathLike, weights: dict[str, torch.Tensor],
                    optimizer: tuple[dict[str, torch.Tensor], dict[str, Any]] | None,
                    state: dict[str, Any]) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing an old one).

    ``weights``: variable name → tensor; ``optimizer``: ``Optimizer.state_dict()``;
    ``state``: JSON-able run state (step, epoch, ...). Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        save_file(_cpu(weights), str(tmp / WEIGHTS))
        meta: dict[str, Any] = {"format": FORMAT, **state, "torch": torch.__version__}
        if optimizer is not None:
            tensors, opt_meta = optimizer
            save_file(_cpu(tensors), str(tmp / OPTIMIZER))
            meta["optimizer"] = opt_meta
        with open(tmp / STATE, "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        for name in (WEIGHTS, OPTIMIZER):
            if (tmp / name).exists():
                with open(tmp / name, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory from a checkpoint path or a run directory (its final one).

    Raises CheckpointError when neither is there.
    """
    path = Path(path)
    for candidate in (path, path / "checkpoints" / "final"):
        if (candidate / STATE).is_file() and (candidate / WEIGHTS).is_file():
            return candidate
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} not found")
    raise CheckpointError(f"{str(path)!r} is not a checkpoint (no {STATE} and {WEIGHTS}) nor a "
                          f"run directory with checkpoints/final")


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor],
                                                      dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Read (weights, optimizer tensors or None, state) from a checkpoint or run directory.

    Tensors are loaded on the CPU. Raises CheckpointError for a missing, unreadable or
    corrupt file, or an unknown format.
    """
    ckpt = find_checkpoint(path)
    try:
        with open(ckpt / STATE, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{ckpt / STATE}: cannot read: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{ckpt / STATE}: unknown checkpoint format "
                              f"{state.get('format') if isinstance(state, dict) else state!r}")
    weights = _load_tensors(ckpt / WEIGHTS)
    opt = _load_tensors(ckpt / OPTIMIZER) if (ckpt / OPTIMIZER).exists() else None
    return weights, opt, state


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: not a valid safetensors file ({exc})") from None
