"""A trainer's complete state as checkpoint parts, and back.

:func:`capture` gives ``(weights, optimizer state, state.json dict)`` for
:func:`trainctl.io.save_checkpoint`; :func:`restore` puts a loaded checkpoint back into a
:class:`~trainctl.train.loop.Trainer` so the next steps are bit-identical to those of an
uninterrupted run: weights, optimizer slots and counters, every random generator, the data
position (epoch, batches done), the running sums of the epoch in progress (loss and
metrics), callback and schedule state. docs/checkpoints.md lists the fields.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainctl.backend import random as backend_random

if TYPE_CHECKING:
    from trainctl.train.loop import Trainer


# ---- random generators ----------------------------------------------------------------
def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def capture_rng() -> dict[str, Any]:
    """Every random generator a run may draw from, JSON-able.

    ``python``: ``random.getstate()`` as [version, 625 ints, gauss]; ``numpy``: the legacy
    global MT19937 (key, pos, has_gauss, cached_gaussian); ``torch_cpu`` /
    ``torch_cuda`` (one per device, when CUDA is initialised): torch's default generators,
    base64 of their uint8 state; ``trainctl``: the generators of trainctl.backend.random
    (dropout, initialisers) by device key, base64 likewise.
    """
    version, internal, gauss = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = ([_b64(s) for s in torch.cuda.get_rng_state_all()]
            if torch.cuda.is_available() and torch.cuda.is_initialized() else [])
    return {"python": [version, list(internal), gauss],
            "numpy": {"key": [int(k) for k in key], "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)},
            "torch_cpu": _b64(torch.get_rng_state()), "torch_cuda": cuda,
            "trainctl": {k: _b64(v) for k, v in backend_random.rng_state().items()}}


def restore_rng(rng: dict[str, Any]) -> list[str]:
    """Restore :func:`capture_rng` output; returns warnings for generators of devices this
    machine lacks (a run saved on CUDA resumed on the CPU draws other dropout masks)."""
    warnings = []
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    n = rng["numpy"]
    np.random.set_state(("MT19937", np.array(n["key"], dtype=np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(_unb64(rng["torch_cpu"]))
    cuda = rng.get("torch_cuda") or []
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() >= len(cuda):
        torch.cuda.set_rng_state_all([_unb64(s) for s in cuda])
    elif cuda:
        warnings.append(f"the checkpoint holds {len(cuda)} CUDA generator state(s) this machine "
                        f"cannot restore")
    restorable = {}
    for key, text in rng.get("trainctl", {}).items():
        dev = torch.device(key)
        if dev.type == "cpu" or (dev.type == "cuda" and torch.cuda.is_available()
                                 and (dev.index or 0) < torch.cuda.device_count()):
            restorable[key] = _unb64(text)
        else:
            warnings.append(f"random generator {key!r} not restored (no such device here): "
                            f"random draws (dropout) differ from the uninterrupted run")
    backend_random.set_rng_state(restorable)
    return warnings


# ---- running sums of the epoch in progress ------------------------------------------------
def _encode_value(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return {"tensor": str(value.dtype).replace("torch.", ""), "shape": list(value.shape),
                "values": value.detach().cpu().reshape(-1).tolist()}
    return value


def _decode_value(value: Any, device: torch.device) -> Any:
    if isinstance(value, dict) and "tensor" in value:
        t = torch.tensor(value["values"], dtype=getattr(torch, value["tensor"]))
        return t.reshape(value["shape"]).to(device)
    return value


def metric_state(metric) -> dict[str, Any]:
    """A metric's accumulators (tensor, number, string and None attributes), exactly."""
    return {k: _encode_value(v) for k, v in vars(metric).items()
            if v is None or isinstance(v, (bool, int, float, str, torch.Tensor))}


def load_metric_state(metric, state: dict[str, Any], device: torch.device) -> None:
    for key, value in state.items():
        setattr(metric, key, _decode_value(value, device))


def capture_progress(trainer: "Trainer") -> dict[str, Any] | None:
    """The sums of the epoch in progress (None at an epoch boundary)."""
    if trainer.batch == 0:
        return None
    total, count = trainer._epoch_sums
    return {"loss_sum": _encode_value(total), "count": count,
            "metrics": {m.name: metric_state(m) for m in trainer.setup.metrics},
            "seconds": trainer.epoch_seconds()}


def restore_progress(trainer: "Trainer", progress: dict[str, Any]):
    """Put saved epoch sums back; returns (loss sum tensor, sample count, seconds so far)."""
    device = trainer.setup.device
    for m in trainer.setup.metrics:
        if m.name in progress["metrics"]:
            load_metric_state(m, progress["metrics"][m.name], device)
    return (_decode_value(progress["loss_sum"], device), int(progress["count"]),
            float(progress.get("seconds") or 0.0))


# ---- the whole trainer -------------------------------------------------------------
def spec_sha256(resolved: dict[str, Any]) -> str:
    """SHA-256 of the resolved spec (canonical JSON: sorted keys, no spaces)."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def capture(trainer: "Trainer", kind: str):
    """``(weights, (optimizer tensors, meta), state)`` of ``trainer`` between two steps.

    ``kind``: why it is written (``step``, ``epoch``, ``signal``, ``final``).
    """
    s = trainer.setup
    cardinality = s.splits.train.cardinality()
    callbacks = {name: cb.state_dict() for name, cb in trainer.stateful_callbacks().items()}
    state = {
        "kind": kind, "step": trainer.step, "epoch": trainer.epoch,
        "data": {"epoch": trainer.epoch, "batch": trainer.batch,
                 "batches_per_epoch": cardinality if cardinality >= 0 else None},
        "epoch_progress": capture_progress(trainer),
        "rng": capture_rng(),
        "schedule": trainer.schedule.state_dict() if trainer.schedule is not None else None,
        "stop_reason": trainer.stop_reason,
        "stopped_early": bool(trainer.complete),
        "callbacks": callbacks,
        "metrics_lines": trainer.run_dir.metrics_lines if trainer.run_dir is not None else 0,
        "metrics": dict(trainer.history[-1]) if trainer.history else {},
        "seed": s.spec.seed, "spec_name": s.spec.name, "spec": s.resolved,
        "world_size": s.world_size,  # data-parallel processes: a resume needs as many
        "spec_sha256": spec_sha256(s.resolved),
        "preprocessing": s.splits.preprocessing.to_json(),  # what predict applies to raw features
        "class_names": list(s.splits.class_names) if s.splits.class_names else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return s.model.state_dict(), s.optimizer.state_dict(), state


def restore(trainer: "Trainer", weights: dict[str, torch.Tensor],
            opt_tensors: dict[str, torch.Tensor] | None, state: dict[str, Any],
            optimizer_meta: dict[str, Any] | None = None) -> list[str]:
    """Load a checkpoint into ``trainer``; returns warnings. ``optimizer_meta`` replaces the
    saved optimizer meta (to apply a changed learning rate, explicitly).

    Raises CheckpointError when weights or optimizer state do not fit (nothing of the
    model or optimizer is changed then).
    """
    s = trainer.setup
    meta = optimizer_meta if optimizer_meta is not None else state.get("optimizer")
    warnings = []
    s.model.load_state_dict(weights)
    if meta is not None:
        s.optimizer.load_state_dict(opt_tensors or {}, meta)
    trainer.step, trainer.epoch = int(state["step"]), int(state["epoch"])
    data = state.get("data") or {"batch": 0}
    trainer.batch = int(data["batch"])
    trainer._progress = state.get("epoch_progress")
    if "rng" in state:
        warnings += restore_rng(state["rng"])
    else:
        warnings.append("the checkpoint holds no random generator states (format 1): "
                        "random draws differ from the uninterrupted run")
    if trainer.schedule is not None and state.get("schedule") is not None:
        trainer.schedule.load_state_dict(state["schedule"])
    saved_callbacks = state.get("callbacks") or {}
    for name, cb in trainer.stateful_callbacks().items():
        if name in saved_callbacks:
            cb.load_state_dict(saved_callbacks[name])
    if trainer.run_dir is not None:
        trainer.run_dir.truncate_metrics(int(state.get("metrics_lines", 0)))
        trainer.history = [r for r in trainer.run_dir.read_metrics()
                           if r.get("kind", "epoch") == "epoch"]
    trainer.resumed = True
    return warnings
