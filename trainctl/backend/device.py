"""Device names (`cpu`, `cuda`, `cuda:N`, `mps`, `auto`) resolved to torch devices."""

from __future__ import annotations

import torch

from trainctl.errors import DeviceError


def available_devices() -> list[str]:
    """Names of the devices usable on this machine, CPU last."""
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def asks_auto(name: "str | torch.device | None") -> bool:
    """Whether ``name`` (a ``--device`` value or a spec's ``device``) leaves the choice to
    :func:`resolve_device`: ``auto`` in any case or spacing, or None."""
    return not isinstance(name, torch.device) and (name or "auto").strip().lower() == "auto"


def resolve_device(name: "str | torch.device | None") -> torch.device:
    """Return the torch device for a name; ``auto`` takes CUDA, then MPS, then CPU.

    Raises DeviceError naming the devices that exist when the one asked for does not.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    avail = available_devices()
    if name == "auto":
        return torch.device(avail[0])
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; available: {', '.join(avail)}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} is not available; available: {', '.join(avail)}")
        index = dev.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} is not available; available: {', '.join(avail)}")
        return torch.device("cuda", index)
    if dev.type == "mps" and "mps" not in avail:
        raise DeviceError(f"device 'mps' is not available; available: {', '.join(avail)}")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}; available: {', '.join(avail)}")
    return dev
