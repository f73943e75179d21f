"""Dynamic loss scaling for float16 training, with torch.amp.GradScaler's rules.

The loss is multiplied by ``scale`` before the backward pass so that small gradients do
not underflow in float16; the gradients are divided by it again before the update. When
any gradient is inf or NaN the update is skipped and the scale is multiplied by
``backoff_factor``; after ``growth_interval`` steps in a row without one it is multiplied
by ``growth_factor`` (if that stays finite). Defaults as GradScaler: initial scale 2**16,
growth_factor 2, backoff_factor 0.5, growth_interval 2000
(https://pytorch.org/docs/stable/amp.html#gradient-scaling, the update rule of
``torch._amp_update_scale_``).

The scale, the growth counter and the inf flag stay on the device; :meth:`update` uses
``torch.where`` only. Deciding to skip an update reads the flag on the host, as
GradScaler's ``step`` does (one synchronisation per step, fp16 runs only).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


class DynamicLossScaler:
    """Loss scale of a float16 run (see the module docstring).

    Attributes: ``scale`` (0-d float32 tensor on ``device``), ``growth_tracker`` (0-d
    int32: good steps since the last change), and the factors. State in checkpoints:
    :meth:`state_dict` (floats and ints only).
    """

    def __init__(self, device: torch.device | str = "cpu", init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000):
        if not (growth_factor > 1.0 and 0.0 < backoff_factor < 1.0 and growth_interval > 0):
            raise ValueError("need growth_factor > 1, 0 < backoff_factor < 1, growth_interval > 0")
        self.device = torch.device(device)
        self.scale = torch.tensor(float(init_scale), dtype=torch.float32, device=self.device)
        self.growth_tracker = torch.zeros((), dtype=torch.int32, device=self.device)
        self.growth_factor, self.backoff_factor = float(growth_factor), float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.found_inf = torch.zeros((), dtype=torch.bool, device=self.device)

    def unscale(self, grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """``grads`` (of the scaled loss) divided by the scale, in float32; sets
        ``found_inf`` (0-d bool on the device) when any of them is inf or NaN."""
        inv = self.scale.double().reciprocal().float()  # as GradScaler: 1/scale in float32
        out, flags = [], []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            u = g.float() * inv
            flags.append(torch.isfinite(u).all())
            out.append(u)
        self.found_inf = ~torch.stack(flags).all() if flags else torch.zeros(
            (), dtype=torch.bool, device=self.device)
        return out

    def should_skip(self) -> bool:
        """Whether the last unscaled gradients held an inf or NaN (reads the device)."""
        return bool(self.found_inf)

    def update(self) -> None:
        """The scale after this step: ``backoff`` on inf/NaN (counter reset); ``growth``
        after ``growth_interval`` good steps in a row when the grown scale is finite."""
        found = self.found_inf
        good = self.growth_tracker + 1
        grow = good >= self.growth_interval
        grown = self.scale * self.growth_factor
        grown = torch.where(torch.isfinite(grown), grown, self.scale)
        self.scale = torch.where(found, self.scale * self.backoff_factor,
                                 torch.where(grow, grown, self.scale))
        self.growth_tracker = torch.where(found | grow, torch.zeros_like(good), good)

    def state_dict(self) -> dict[str, Any]:
        return {"scale": float(self.scale), "growth_tracker": int(self.growth_tracker)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = torch.tensor(float(state["scale"]), dtype=torch.float32, device=self.device)
        self.growth_tracker = torch.tensor(int(state["growth_tracker"]), dtype=torch.int32,
                                           device=self.device)
