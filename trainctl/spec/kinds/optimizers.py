"""Optimizer kinds: each optimizer's hyperparameters as YAML options, without torch (the
updates are in ``trainctl.optim``; see :mod:`.layers` for how the two halves meet)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from trainctl.registry import Registry
from trainctl.spec.config import Config

optimizer_kinds: Registry[type["OptimizerKind"]] = Registry("optimizer")

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class OptimizerConfig(Config):
    """Hyperparameters shared by every optimizer; kinds add their own fields."""

    learning_rate: float


class OptimizerKind:
    """Base of optimizer kinds: ``Config`` only."""

    Config: ClassVar[type[OptimizerConfig]] = OptimizerConfig
    registered_name: ClassVar[str] = ""


@optimizer_kinds.register("sgd")
class SGD(OptimizerKind):
    """``learning_rate`` (> 0, 0.01), ``momentum`` (≥ 0, 0), ``dampening`` (in [0, 1], 0),
    ``nesterov`` (false; needs momentum > 0 and dampening 0), ``weight_decay`` (≥ 0, 0)."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 0.01
        momentum: NonNegativeFloat = 0.0
        dampening: Annotated[float, Field(ge=0, le=1)] = 0.0
        nesterov: bool = False
        weight_decay: NonNegativeFloat = 0.0

        @model_validator(mode="after")
        def _nesterov_needs_momentum(self):
            if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
                raise ValueError("nesterov requires momentum > 0 and dampening 0")
            return self


@optimizer_kinds.register("adam")
class Adam(OptimizerKind):
    """``learning_rate`` (> 0, 0.001), ``beta_1`` (in [0, 1), 0.9), ``beta_2`` (in
    [0, 1), 0.999), ``epsilon`` (> 0, 1e-8), ``weight_decay`` (≥ 0, 0), ``amsgrad``."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 0.001
        beta_1: Beta = 0.9
        beta_2: Beta = 0.999
        epsilon: PositiveFloat = 1e-8
        weight_decay: NonNegativeFloat = 0.0
        amsgrad: bool = False


@optimizer_kinds.register("adamw")
class AdamW(Adam):
    """As :class:`Adam`, with ``weight_decay`` (decoupled) defaulting to 0.01."""

    class Config(Adam.Config):
        weight_decay: NonNegativeFloat = 0.01
