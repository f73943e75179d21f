"""Optimizer kinds: each optimizer's hyperparameters as YAML options, without torch (the
updates are in ``trainctl.optim``; see :mod:`.layers` for how the two halves meet).

Every optimizer also takes the options of :class:`OptimizerConfig`: gradient clipping,
``weight_decay_exclude``, parameter ``groups``, gradient accumulation and the exponential
moving average of the weights (Keras' names where Keras has the option).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Annotated, ClassVar, Optional, Sequence, Union

from pydantic import Field, model_validator

from trainctl.registry import Registry
from trainctl.spec.config import Config

optimizer_kinds: Registry[type["OptimizerKind"]] = Registry("optimizer")

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Beta = Annotated[float, Field(ge=0, lt=1)]
Pattern = Annotated[str, Field(min_length=1)]


def matches(name: str, patterns: Sequence[str]) -> bool:
    """Whether parameter ``name`` (e.g. ``dense_1/bias``) matches one of the shell-style
    ``patterns`` (:func:`fnmatch.fnmatchcase`: ``*`` also matches ``/``, case-sensitive)."""
    return any(fnmatchcase(name, p) for p in patterns)


def matches_any(pattern: str, names: Sequence[str]) -> bool:
    """Whether ``pattern`` matches at least one of ``names``."""
    return any(fnmatchcase(n, pattern) for n in names)


class ParamGroup(Config):
    """A parameter group: the parameters whose names match ``match`` (a pattern or a list)
    take this group's ``learning_rate`` and ``weight_decay`` (None: the optimizer's)."""

    match: Union[Pattern, Annotated[list[Pattern], Field(min_length=1)]]
    learning_rate: Optional[PositiveFloat] = None
    weight_decay: Optional[NonNegativeFloat] = None

    @property
    def patterns(self) -> list[str]:
        return [self.match] if isinstance(self.match, str) else list(self.match)


class OptimizerConfig(Config):
    """Options shared by every optimizer; kinds add their hyperparameters.

    - ``clipnorm`` (each gradient rescaled to norm ≤ clipnorm), ``global_clipnorm`` (all
      gradients together, as torch.nn.utils.clip_grad_norm_), ``clipvalue`` (each element
      clamped to [−v, v], as clip_grad_value_): at most one, each > 0 or null;
    - ``weight_decay_exclude``: parameter name patterns that get no weight decay;
    - ``groups``: :class:`ParamGroup` list; a parameter takes the first group it matches;
    - ``gradient_accumulation_steps`` (≥ 1, 1): an update every N gradients, from their mean
      weighted by batch size;
    - ``use_ema`` (false), ``ema_momentum`` (in [0, 1), 0.99): keep an exponential moving
      average of the weights, used for evaluation.
    """

    learning_rate: float
    clipnorm: Optional[PositiveFloat] = None
    global_clipnorm: Optional[PositiveFloat] = None
    clipvalue: Optional[PositiveFloat] = None
    weight_decay_exclude: list[Pattern] = Field(default_factory=list)
    groups: list[ParamGroup] = Field(default_factory=list)
    gradient_accumulation_steps: int = Field(1, ge=1)
    use_ema: bool = False
    ema_momentum: Beta = 0.99

    @model_validator(mode="after")
    def _one_clipping(self):
        given = [k for k in ("clipnorm", "global_clipnorm", "clipvalue") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"only one of clipnorm, global_clipnorm and clipvalue can be set; "
                             f"got {' and '.join(given)}")
        return self

    def param_options(self, name: str) -> tuple[float, float]:
        """``(learning_rate, weight_decay)`` of the parameter called ``name``: those of the
        first group it matches, else the optimizer's; weight decay 0 if it matches
        ``weight_decay_exclude`` (the exclusion wins over a group's weight decay)."""
        lr, wd = self.learning_rate, float(getattr(self, "weight_decay", 0.0))
        for group in self.groups:
            if matches(name, group.patterns):
                lr = group.learning_rate if group.learning_rate is not None else lr
                wd = group.weight_decay if group.weight_decay is not None else wd
                break
        return lr, 0.0 if matches(name, self.weight_decay_exclude) else wd

    def pattern_problems(self, names: Sequence[str]) -> list[tuple[tuple, str]]:
        """``(key path, message)`` for each pattern of ``weight_decay_exclude`` or
        ``groups`` that matches none of the parameter ``names`` (a likely typo), and for a
        group's ``weight_decay`` when this optimizer has none."""
        problems = []
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        for i, pattern in enumerate(self.weight_decay_exclude):
            if not matches_any(pattern, names):
                problems.append((("weight_decay_exclude", i),
                                 f"pattern {pattern!r} matches no parameter (parameters: {shown})"))
        for i, group in enumerate(self.groups):
            for j, pattern in enumerate(group.patterns):
                if not matches_any(pattern, names):
                    path = ("groups", i, "match") + ((j,) if isinstance(group.match, list) else ())
                    problems.append((path, f"pattern {pattern!r} matches no parameter "
                                           f"(parameters: {shown})"))
            if group.weight_decay is not None and "weight_decay" not in type(self).model_fields:
                problems.append((("groups", i, "weight_decay"),
                                 "this optimizer has no weight_decay"))
        return problems


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


@optimizer_kinds.register("rmsprop")
class RMSprop(OptimizerKind):
    """``learning_rate`` (> 0, 0.01), ``rho`` (in [0, 1), 0.99), ``epsilon`` (> 0, 1e-8),
    ``momentum`` (≥ 0, 0), ``centered`` (false), ``weight_decay`` (≥ 0, 0); torch's
    defaults."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 0.01
        rho: Beta = 0.99
        epsilon: PositiveFloat = 1e-8
        momentum: NonNegativeFloat = 0.0
        centered: bool = False
        weight_decay: NonNegativeFloat = 0.0


@optimizer_kinds.register("adagrad")
class Adagrad(OptimizerKind):
    """``learning_rate`` (> 0, 0.01), ``learning_rate_decay`` (≥ 0, 0),
    ``initial_accumulator_value`` (≥ 0, 0), ``epsilon`` (> 0, 1e-10), ``weight_decay``
    (≥ 0, 0); torch's defaults."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 0.01
        learning_rate_decay: NonNegativeFloat = 0.0
        initial_accumulator_value: NonNegativeFloat = 0.0
        epsilon: PositiveFloat = 1e-10
        weight_decay: NonNegativeFloat = 0.0


@optimizer_kinds.register("adadelta")
class Adadelta(OptimizerKind):
    """``learning_rate`` (> 0, 1.0), ``rho`` (in [0, 1], 0.9), ``epsilon`` (> 0, 1e-6),
    ``weight_decay`` (≥ 0, 0); torch's defaults."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 1.0
        rho: Annotated[float, Field(ge=0, le=1)] = 0.9
        epsilon: PositiveFloat = 1e-6
        weight_decay: NonNegativeFloat = 0.0


@optimizer_kinds.register("lion")
class Lion(OptimizerKind):
    """``learning_rate`` (> 0, 1e-4), ``beta_1`` (in [0, 1], 0.9), ``beta_2`` (in [0, 1],
    0.99), ``weight_decay`` (≥ 0, 0; decoupled); the paper's defaults."""

    class Config(OptimizerConfig):
        learning_rate: PositiveFloat = 1e-4
        beta_1: Annotated[float, Field(ge=0, le=1)] = 0.9
        beta_2: Annotated[float, Field(ge=0, le=1)] = 0.99
        weight_decay: NonNegativeFloat = 0.0
