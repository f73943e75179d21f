"""Learning-rate schedule kinds: the options of the spec's ``schedule:`` section, without
torch (the schedules themselves are in ``trainctl.optim.schedules``; see :mod:`.layers`
for how the two halves meet).

A schedule multiplies the optimizer's ``learning_rate`` (the base rate) by a factor that
depends on a counter: optimizer updates (``interval: step``; with gradient accumulation an
update takes several batches) or completed epochs (``interval: epoch``). Every count option (``warmup_steps``, ``step_size``, ``milestones``,
``decay_steps``, ``total_steps``) is in units of that interval. ``reduce_on_plateau``
instead reacts to a monitored value of the metrics records.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from trainctl.registry import Registry
from trainctl.spec.config import Config

schedule_kinds: Registry[type["ScheduleKind"]] = Registry("schedule")

Interval = Literal["step", "epoch"]
Count = Annotated[int, Field(gt=0)]
Factor = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class ScheduleConfig(Config):
    """Options every schedule has: ``interval`` (what the counter counts)."""

    interval: Interval = "step"


class WarmupConfig(ScheduleConfig):
    """A schedule of the counter, optionally after a linear warmup: for the first
    ``warmup_steps`` counts the factor rises linearly from ``warmup_start_factor`` to 1
    (torch's LinearLR), then the schedule starts counting from 0 (torch's SequentialLR)."""

    warmup_steps: int = Field(0, ge=0)
    warmup_start_factor: float = Field(0.0, ge=0, le=1)


class ScheduleKind:
    """Base of schedule kinds: ``Config``, and ``run_length`` (the count options that
    default to the length of the run, see :meth:`defaults`)."""

    Config: ClassVar[type[ScheduleConfig]] = ScheduleConfig
    registered_name: ClassVar[str] = ""
    run_length: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def defaults(cls, config: ScheduleConfig, length: Optional[int],
                 notes: Optional[list[str]] = None) -> ScheduleConfig:
        """``config`` with each option of :attr:`run_length` left null set to the run's
        ``length`` in the interval's units (minus the warmup). Raises ValueError naming the
        option when it is needed and the length is unknown.

        A run no longer than its warmup (a short trial run, ``--epochs 1``) spends all of it
        warming up, as torch's SequentialLR and Hugging Face's warmup schedules do: the
        option is set to 1 (it is never reached) and a warning is appended to ``notes``."""
        updates = {}
        warmup = getattr(config, "warmup_steps", 0)
        for key in cls.run_length:
            if getattr(config, key) is not None:
                continue
            if length is None:
                raise ValueError(f"{key}: the length of the run is unknown (the training data "
                                 f"has no known number of batches); give {key}")
            if length - warmup <= 0:
                if notes is not None:
                    notes.append(f"schedule: the run has {length} {config.interval}s, no more "
                                 f"than the {warmup} of warmup: it ends during the warmup, "
                                 f"before the {cls.registered_name} part ({key} set to 1); "
                                 f"for a full schedule shorten the warmup (e.g. --set "
                                 f"schedule.warmup_steps={length // 5}) or train longer")
                updates[key] = 1
                continue
            updates[key] = length - warmup
        return config.model_copy(update=updates) if updates else config


@schedule_kinds.register("constant")
class Constant(ScheduleKind):
    """The base rate (after the warmup, if any)."""

    class Config(WarmupConfig):
        pass


@schedule_kinds.register("linear_warmup")
class LinearWarmup(ScheduleKind):
    """A linear warmup over ``warmup_steps`` (> 0, required), then the base rate."""

    class Config(WarmupConfig):
        warmup_steps: Count


@schedule_kinds.register("step")
class Step(ScheduleKind):
    """``gamma ** (t // step_size)``: ``step_size`` (required), ``gamma`` (0.1); counted in
    epochs by default (torch's StepLR)."""

    class Config(WarmupConfig):
        interval: Interval = "epoch"
        step_size: Count
        gamma: Factor = 0.1


@schedule_kinds.register("multistep")
class MultiStep(ScheduleKind):
    """``gamma ** (number of milestones <= t)``: ``milestones`` (increasing counts,
    required), ``gamma`` (0.1); counted in epochs by default (torch's MultiStepLR)."""

    class Config(WarmupConfig):
        interval: Interval = "epoch"
        milestones: list[Count] = Field(min_length=1)
        gamma: Factor = 0.1

        @model_validator(mode="after")
        def _increasing(self):
            if any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
                raise PydanticCustomError("spec_schedule", "must increase, got {got}",
                                          {"key": "milestones", "got": self.milestones})
            return self


@schedule_kinds.register("exponential")
class Exponential(ScheduleKind):
    """``gamma ** t`` (``gamma`` required); counted in epochs by default (ExponentialLR)."""

    class Config(WarmupConfig):
        interval: Interval = "epoch"
        gamma: Factor


@schedule_kinds.register("cosine")
class Cosine(ScheduleKind):
    """Cosine decay from the base rate to ``min_learning_rate`` (0) over ``decay_steps``
    (default: the rest of the run after the warmup), then ``min_learning_rate``
    (torch's CosineAnnealingLR up to ``T_max``; SGDR, Loshchilov & Hutter 2017)."""

    run_length = ("decay_steps",)

    class Config(WarmupConfig):
        decay_steps: Optional[Count] = None
        min_learning_rate: Rate = 0.0


@schedule_kinds.register("polynomial")
class Polynomial(ScheduleKind):
    """``(base - min) * (1 - t / decay_steps) ** power + min`` until ``decay_steps``
    (default: the rest of the run), then ``min_learning_rate`` (0); ``power`` (1.0)
    (Keras' PolynomialDecay; torch's PolynomialLR with a minimum of 0)."""

    run_length = ("decay_steps",)

    class Config(WarmupConfig):
        decay_steps: Optional[Count] = None
        power: Factor = 1.0
        min_learning_rate: Rate = 0.0


@schedule_kinds.register("one_cycle")
class OneCycle(ScheduleKind):
    """The 1cycle policy (Smith & Topin 2018; torch's OneCycleLR, learning rate only):
    from ``max_learning_rate / div_factor`` up to ``max_learning_rate`` (default: the
    optimizer's rate) over ``pct_start`` of ``total_steps`` (default: the run), then down to
    ``initial / final_div_factor``; ``anneal_strategy`` cos or linear; ``three_phase``."""

    run_length = ("total_steps",)

    class Config(ScheduleConfig):
        total_steps: Optional[Count] = None
        max_learning_rate: Optional[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = None
        pct_start: float = Field(0.3, gt=0, lt=1)
        anneal_strategy: Literal["cos", "linear"] = "cos"
        div_factor: Factor = 25.0
        final_div_factor: Factor = 1e4
        three_phase: bool = False


@schedule_kinds.register("reduce_on_plateau")
class ReduceOnPlateau(ScheduleKind):
    """Multiply the rate by ``factor`` (0.1) when ``monitor`` (``val_loss``) has not improved
    by more than ``threshold`` (1e-4, ``rel`` or ``abs``) for ``patience`` (10) checks, then
    wait ``cooldown`` (0) checks; never below ``min_learning_rate`` (0), and a change smaller
    than ``eps`` (1e-8) is skipped (torch's ReduceLROnPlateau). A check is each epoch record
    (``interval: epoch``) or each evaluation every N steps (``interval: step``)."""

    class Config(ScheduleConfig):
        interval: Interval = "epoch"
        monitor: str = "val_loss"
        mode: Literal["min", "max", "auto"] = "auto"
        factor: float = Field(0.1, gt=0, lt=1)
        patience: int = Field(10, ge=0)
        threshold: float = Field(1e-4, ge=0, allow_inf_nan=False)
        threshold_mode: Literal["rel", "abs"] = "rel"
        cooldown: int = Field(0, ge=0)
        min_learning_rate: Rate = 0.0
        eps: float = Field(1e-8, ge=0, allow_inf_nan=False)
