"""Learning-rate schedules: set ``optimizer.learning_rate`` before every step.

Each registered schedule derives from its kind in :mod:`trainctl.spec.kinds.schedules`
(its ``Config``). The rate of a step is a pure function of the trainer's counters
(optimizer updates applied, ``optimizer.iterations``, or epochs completed, as ``interval``
says; with gradient accumulation one update takes several batches), so a resumed run gets
the same rates from its restored counters; what a counter cannot give is the schedule's
state (``state_dict``: the factor a non-finite rollback applied, and reduce_on_plateau's
best value, bad-check count, cooldown and current rate), saved in the ``schedule`` slot of
a checkpoint's state.json.

Formulas (t: the count, base: the optimizer's ``learning_rate``, W: ``warmup_steps``;
during the warmup, t < W, the factor is ``s + (1 - s) t / W`` with s the start factor,
then the schedule below sees t - W), each matching torch.optim.lr_scheduler's closed form:

- constant: base; step: base·γ^⌊t/step_size⌋; multistep: base·γ^(milestones ≤ t);
  exponential: base·γ^t;
- cosine: min + (base − min)(1 + cos(π·min(t, T)/T))/2 (CosineAnnealingLR; SGDR);
- polynomial: (base − min)(1 − min(t, T)/T)^power + min (PolynomialLR, Keras'
  PolynomialDecay);
- one_cycle: OneCycleLR's phases (Smith & Topin 2018), held at its last rate after
  ``total_steps``;
- reduce_on_plateau: ReduceLROnPlateau, one check per record holding ``monitor``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from trainctl.optim.base import Optimizer
from trainctl.registry import Registry
from trainctl.spec.kinds import schedules as kinds
from trainctl.spec.kinds.callbacks import monitor_mode
from trainctl.spec.kinds.schedules import ScheduleConfig, ScheduleKind

schedules: Registry[type["Schedule"]] = Registry("schedule")


class Schedule(ScheduleKind):
    """Drives ``optimizer.learning_rate`` from the base rate (``optimizer.config``).

    Attributes:
        config: the validated options, run-length defaults filled in.
        optimizer: the optimizer whose rate is set.
        scale: a factor on every rate (1; a non-finite rollback lowers it), part of the
            state.
    """

    def __init__(self, config: ScheduleConfig, optimizer: Optimizer):
        self.config, self.optimizer, self.scale = config, optimizer, 1.0

    @property
    def base(self) -> float:
        """The rate the factors multiply: the optimizer's configured ``learning_rate``."""
        return float(self.optimizer.config.learning_rate)

    def count(self, step: int, epoch: int) -> int:
        """The counter this schedule follows: ``step`` or ``epoch`` (see ``interval``)."""
        return step if self.config.interval == "step" else epoch

    def rate(self, step: int, epoch: int) -> float:
        """The rate of the next update, after ``step`` updates and ``epoch`` epochs."""
        t = self.count(step, epoch)
        warmup = getattr(self.config, "warmup_steps", 0)
        if t < warmup:
            s = self.config.warmup_start_factor
            return self.scale * self.base * (s + (1.0 - s) * t / warmup)
        return self.scale * self.value(t - warmup)

    def value(self, t: int) -> float:
        """The unscaled rate at count ``t`` (after the warmup)."""
        raise NotImplementedError

    def apply(self, step: int, epoch: int) -> float:
        """Set the optimizer's rate for the next step; returns it."""
        rate = self.rate(step, epoch)
        self.optimizer.learning_rate = rate
        return rate

    def observe(self, record: Mapping[str, Any]) -> None:
        """A metrics record was written (only reduce_on_plateau reacts)."""

    # ---- checkpoints -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: ``type``, ``interval``, ``scale`` (and a subclass's own)."""
        return {"type": self.registered_name, "interval": self.config.interval,
                "scale": self.scale}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. The ``scale`` is always taken; a schedule of another
        type (changed with ``--apply-optimizer-changes``) keeps its own other state."""
        self.scale = float(state.get("scale", 1.0))


@schedules.register("constant")
class Constant(Schedule, kinds.Constant):
    def value(self, t: int) -> float:
        return self.base


@schedules.register("linear_warmup")
class LinearWarmup(Constant, kinds.LinearWarmup):
    pass


@schedules.register("step")
class Step(Schedule, kinds.Step):
    def value(self, t: int) -> float:
        return self.base * self.config.gamma ** (t // self.config.step_size)


@schedules.register("multistep")
class MultiStep(Schedule, kinds.MultiStep):
    def value(self, t: int) -> float:
        passed = sum(1 for m in self.config.milestones if m <= t)
        return self.base * self.config.gamma ** passed


@schedules.register("exponential")
class Exponential(Schedule, kinds.Exponential):
    def value(self, t: int) -> float:
        return self.base * self.config.gamma ** t


@schedules.register("cosine")
class Cosine(Schedule, kinds.Cosine):
    def value(self, t: int) -> float:
        c, lo = self.config, self.config.min_learning_rate
        return lo + (self.base - lo) * (1 + math.cos(math.pi * min(t, c.decay_steps) /
                                                     c.decay_steps)) / 2


@schedules.register("polynomial")
class Polynomial(Schedule, kinds.Polynomial):
    def value(self, t: int) -> float:
        c, lo = self.config, self.config.min_learning_rate
        return (self.base - lo) * (1 - min(t, c.decay_steps) / c.decay_steps) ** c.power + lo


@schedules.register("one_cycle")
class OneCycle(Schedule, kinds.OneCycle):
    @property
    def base(self) -> float:
        top = self.config.max_learning_rate
        return float(top if top is not None else self.optimizer.config.learning_rate)

    def _phases(self) -> list[tuple[float, float, float]]:
        """(end count, start rate, end rate) per phase, as OneCycleLR builds them."""
        c, top = self.config, self.base
        low = top / c.div_factor
        floor = low / c.final_div_factor
        n = c.total_steps
        if c.three_phase:
            return [(c.pct_start * n - 1, low, top), (2 * c.pct_start * n - 2, top, low),
                    (n - 1, low, floor)]
        return [(c.pct_start * n - 1, low, top), (n - 1, top, floor)]

    def value(self, t: int) -> float:
        t = min(t, self.config.total_steps - 1)
        start = 0.0
        phases = self._phases()
        for i, (end, a, b) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                pct = (t - start) / (end - start)
                if self.config.anneal_strategy == "cos":
                    return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (b - a) * pct + a
            start = end
        raise AssertionError("unreachable")


@schedules.register("reduce_on_plateau")
class ReduceOnPlateau(Schedule, kinds.ReduceOnPlateau):
    """torch.optim.lr_scheduler.ReduceLROnPlateau, checking ``monitor`` in each record of
    its interval's kind (epoch records, or step records when ``interval: step``)."""

    def __init__(self, config, optimizer):
        super().__init__(config, optimizer)
        self.mode = monitor_mode(config.monitor, config.mode)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.bad, self.cooldown_left, self.checks = 0, 0, 0
        self.current: float | None = None  # the rate; None: the base rate

    def value(self, t: int) -> float:
        return self.base if self.current is None else self.current

    def _better(self, a: float) -> bool:
        c = self.config
        if self.mode == "min":
            return a < (self.best * (1 - c.threshold) if c.threshold_mode == "rel"
                        else self.best - c.threshold)
        return a > (self.best * (1 + c.threshold) if c.threshold_mode == "rel"
                    else self.best + c.threshold)

    def observe(self, record: Mapping[str, Any]) -> None:
        c = self.config
        kind = record.get("kind", "epoch")
        value = record.get(c.monitor)
        if kind != c.interval or value is None:
            return
        value = float(value)
        self.checks += 1
        if self._better(value):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad = 0
        if self.bad > c.patience:
            old = self.value(0)
            new = max(old * c.factor, c.min_learning_rate)
            if old - new > c.eps:
                self.current = new
            self.cooldown_left, self.bad = c.cooldown, 0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best": _json_float(self.best), "bad": self.bad,
                "cooldown_left": self.cooldown_left, "checks": self.checks,
                "learning_rate": self.current}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("type") == self.registered_name:
            self.best = float(state["best"])
            self.bad, self.cooldown_left = int(state["bad"]), int(state["cooldown_left"])
            self.checks = int(state.get("checks", 0))
            lr = state.get("learning_rate")
            self.current = None if lr is None else float(lr)


def _json_float(x: float) -> float | str:
    """±inf as the strings "inf"/"-inf" (JSON has no infinities); float() reads them back."""
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


def build_schedule(name: str, config: ScheduleConfig, optimizer: Optimizer) -> Schedule:
    """The schedule registered as ``name`` over ``optimizer`` (config defaults resolved)."""
    return schedules.get(name)(config, optimizer)
