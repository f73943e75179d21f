"""Seeded random state for ops that draw random numbers (dropout, initialisers).

One torch.Generator per device type, seeded together by :func:`manual_seed`, so a run
with the same seed draws the same numbers. The state can be saved and restored
(checkpoints use :func:`rng_state` / :func:`set_rng_state`).
"""

from __future__ import annotations

import torch

_generators: dict[str, torch.Generator] = {}
_seed = 0


def manual_seed(seed: int) -> None:
    """Seed every generator (existing and future ones) with ``seed``."""
    global _seed
    _seed = int(seed)
    for gen in _generators.values():
        gen.manual_seed(_seed)


def generator(device: torch.device | str = "cpu") -> torch.Generator:
    """The generator for ``device`` (created and seeded on first use)."""
    dev = torch.device(device)
    key = dev.type if dev.type == "cpu" else str(dev)
    gen = _generators.get(key)
    if gen is None:
        gen = torch.Generator(device=dev)
        gen.manual_seed(_seed)
        _generators[key] = gen
    return gen


def rng_state() -> dict[str, torch.Tensor]:
    """The state of every generator, by device key (uint8 tensors on the CPU)."""
    return {key: gen.get_state() for key, gen in _generators.items()}


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Restore states saved by :func:`rng_state`."""
    for key, value in state.items():
        generator(key).set_state(value)
