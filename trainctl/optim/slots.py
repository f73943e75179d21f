"""Slot tensors in and out of an optimizer state dict (keys ``"<param name>/<slot>"``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from trainctl.autodiff import Variable
from trainctl.errors import CheckpointError


def dump_slots(state: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``{"<param>/<slot>": detached copy}`` of ``{param: {slot: tensor}}``."""
    return {f"{name}/{slot}": t.detach().clone()
            for name, slots in state.items() for slot, t in slots.items()}


@dataclass
class LoadedSlots:
    main: dict[str, dict[str, torch.Tensor]]
    """``{param: {slot: tensor}}`` of the updated parameters (those in ``steps``)."""
    extra: dict[str, dict[str, torch.Tensor]]
    """``{extra slot name: {param: tensor}}``, any parameter may have them."""


def load_slots(params: Sequence[Variable], tensors: Mapping[str, torch.Tensor],
               steps: Mapping[str, int], slot_names: Sequence[str],
               extra: Sequence[str] = ()) -> LoadedSlots:
    """Check and copy saved slots onto their parameters' devices.

    Every parameter in ``steps`` must have each of ``slot_names``; any parameter may have
    the ``extra`` slots (shadow weights, accumulated gradients). Raises CheckpointError for
    a parameter unknown to ``params``, a missing or unexpected slot, or one whose shape or
    dtype differs from its parameter's.
    """
    by_name = {p.name: p for p in params}
    unknown = sorted(set(steps) - set(by_name))
    if unknown:
        raise CheckpointError(f"optimizer state has parameters this model lacks: "
                              f"{', '.join(unknown)}")
    out = LoadedSlots({}, {x: {} for x in extra})
    for name in steps:
        out.main[name] = {slot: _copy(tensors, f"{name}/{slot}", by_name[name], required=True)
                          for slot in slot_names}
    for name, p in by_name.items():
        for slot in extra:
            t = _copy(tensors, f"{name}/{slot}", p, required=False)
            if t is not None:
                out.extra[slot][name] = t
    expected = {f"{n}/{s}" for n in steps for s in slot_names}
    expected |= {f"{n}/{s}" for s, found in out.extra.items() for n in found}
    unexpected = sorted(set(tensors) - expected)
    if unexpected:
        raise CheckpointError(f"optimizer state has unexpected slots: {', '.join(unexpected)}")
    return out


def _copy(tensors: Mapping[str, torch.Tensor], key: str, p: Variable,
          required: bool) -> torch.Tensor | None:
    if key not in tensors:
        if required:
            raise CheckpointError(f"optimizer state lacks slot {key!r}")
        return None
    t = tensors[key]
    if tuple(t.shape) != p.shape or t.dtype != p.dtype:
        raise CheckpointError(f"optimizer slot {key!r} is {_describe(t)}, but parameter "
                              f"{p.name!r} is {_describe(p.data)}")
    return t.detach().to(device=p.device, copy=True)


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).replace('torch.', '')}{list(t.shape)}"
