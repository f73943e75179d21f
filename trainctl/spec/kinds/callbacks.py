"""Callback kinds: the options of each entry of the spec's ``callbacks:`` list, without torch
(the callbacks themselves are in ``trainctl.train``; see :mod:`.layers` for how the two
halves meet)::

    callbacks:
      - {type: early_stopping, monitor: val_loss, patience: 5, restore_best_weights: true}
      - {type: time_budget, minutes: 30}
      - {type: nonfinite_guard, policy: rollback, factor: 0.5}

A monitored value is checked at every evaluation: each epoch record, and each step record
written by ``train.eval_every_n_steps``; a record without the value is skipped.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from trainctl.registry import Registry
from trainctl.spec.config import Config

callback_kinds: Registry[type["CallbackKind"]] = Registry("callback")

GUARD = "nonfinite_guard"
_MAXIMISED = re.compile(r"(^|_)(acc|accuracy|auc|precision|recall|f1|r2|top_k\w*)$")


def monitor_mode(monitor: str, mode: str) -> str:
    """``min`` or ``max`` for ``monitor``; ``auto`` is ``max`` for accuracy-like keys
    (accuracy, auc, precision, recall, f1, r2, top_k..., with or without ``val_``) and
    ``min`` otherwise, as Keras' callbacks decide."""
    if mode != "auto":
        return mode
    return "max" if _MAXIMISED.search(monitor) else "min"


class CallbackConfig(Config):
    """Options every callback has (none yet); kinds add their own fields."""


class CallbackKind:
    """Base of callback kinds: ``Config`` and whether the spec may list it more than once."""

    Config: ClassVar[type[CallbackConfig]] = CallbackConfig
    registered_name: ClassVar[str] = ""
    repeatable: ClassVar[bool] = False


@callback_kinds.register("early_stopping")
class EarlyStopping(CallbackKind):
    """Stop training when ``monitor`` (``val_loss``) has not improved by more than
    ``min_delta`` (0) for ``patience`` (0) checks in a row (0 and 1: at the first), as
    Keras' EarlyStopping; ``mode`` (min, max, auto: max for accuracy-like values);
    ``restore_best_weights`` (false): end with the weights of the best check. The run then
    counts as complete (``final`` is written)."""

    repeatable = True

    class Config(CallbackConfig):
        monitor: str = "val_loss"
        mode: Literal["min", "max", "auto"] = "auto"
        patience: int = Field(0, ge=0)
        min_delta: float = Field(0.0, ge=0, allow_inf_nan=False)
        restore_best_weights: bool = False


@callback_kinds.register("time_budget")
class TimeBudget(CallbackKind):
    """Stop cleanly, with a checkpoint, once training has run ``hours`` + ``minutes`` +
    ``seconds`` (wall clock, counted from the start of this process's training; a resumed
    run gets a new budget). The run is then incomplete: resume it to continue."""

    class Config(CallbackConfig):
        hours: float = Field(0.0, ge=0, allow_inf_nan=False)
        minutes: float = Field(0.0, ge=0, allow_inf_nan=False)
        seconds: float = Field(0.0, ge=0, allow_inf_nan=False)

        @model_validator(mode="after")
        def _some_time(self):
            if self.hours + self.minutes + self.seconds <= 0:
                raise ValueError("give hours, minutes or seconds (> 0 in all)")
            return self

        @property
        def total_seconds(self) -> float:
            return self.hours * 3600 + self.minutes * 60 + self.seconds


@callback_kinds.register(GUARD)
class NonFiniteGuard(CallbackKind):
    """What to do when a step's loss or a gradient is not finite (NaN or ±inf). The update
    is never applied; the report names the first layer and op (forward or backward) that
    produced a non-finite value. ``policy``:

    - ``stop`` (the default, also without this entry): write a checkpoint of the state
      before the batch and stop with an error;
    - ``skip_batch``: skip the update and go on (at most ``max_skips`` (10) in a row);
    - ``rollback``: restore the in-memory snapshot of weights and optimizer state taken
      every ``snapshot_every_n_steps`` (100) steps, multiply the learning rate by
      ``factor`` (0.5) and go on (at most ``max_rollbacks`` (3) in a row);
    - ``off``: no check (no host-device synchronisation per step; a NaN goes on).
    """

    class Config(CallbackConfig):
        policy: Literal["stop", "skip_batch", "rollback", "off"] = "stop"
        factor: float = Field(0.5, gt=0, lt=1)
        snapshot_every_n_steps: int = Field(100, gt=0)
        max_rollbacks: int = Field(3, gt=0)
        max_skips: int = Field(10, gt=0)
