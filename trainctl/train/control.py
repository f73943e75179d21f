"""The spec's ``train:``, ``schedule:`` and ``callbacks:`` made into what the Trainer runs.

:func:`finish_control` (called by :func:`trainctl.train.prepare`) fills the schedule's
run-length defaults, checks every monitored key against the records the run will write,
and records the resolved ``schedule`` and ``callbacks`` in the resolved spec.
:class:`Control` is the part of :class:`~trainctl.train.loop.Trainer` that runs them: run
length by epochs or steps, learning rate before each step, step records (logging and
evaluation every N steps), early completion, notices.
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

from trainctl.optim.schedules import Schedule, build_schedule
from trainctl.spec.kinds.control import ControlPlan
from trainctl.train import callbacks_guard, callbacks_stop  # noqa: F401 - registers them
from trainctl.train.callbacks import Callback, spec_callbacks
from trainctl.train.checkpointer import record_keys

if TYPE_CHECKING:
    from trainctl.train.setup import Setup


def batches_per_epoch(setup: "Setup") -> int | None:
    """Batches in one epoch of the training split, or None when unknown."""
    n = setup.splits.train.cardinality()
    return n if n is not None and n >= 0 else None


def run_length(setup: "Setup") -> tuple[int | None, int | None]:
    """``(epochs, steps)`` of the run: the one the spec gives, the other derived from the
    batches per epoch (None when unknown). By steps, the last epoch may be partial."""
    train, n = setup.spec.train, batches_per_epoch(setup)
    if train.steps is not None:
        return (math.ceil(train.steps / n) if n else None), train.steps
    return train.epochs, (train.epochs * n if n is not None else None)


def updates_in_run(setup: "Setup") -> int | None:
    """Optimizer updates the whole run makes (with ``gradient_accumulation_steps`` n, an
    epoch of b batches makes ceil(b / n), a partial accumulation being applied at its
    end), or None when unknown: the unit of schedules counted by step."""
    n = getattr(setup.optimizer.config, "gradient_accumulation_steps", 1) or 1
    b, train = batches_per_epoch(setup), setup.spec.train
    if b is None:
        return None
    if train.steps is not None:
        return (train.steps // b) * math.ceil(b / n) + (train.steps % b) // n
    return train.epochs * math.ceil(b / n)


def finish_control(setup: "Setup", plan: ControlPlan, check) -> None:
    """Complete ``plan`` for ``setup`` (``check``: prepare's error collector, with ``doc``
    and ``add(path, message)``) and store it as ``setup.control``; sets the resolved
    spec's ``schedule`` and ``callbacks`` (with their defaults; the guard
    used when the spec lists none is not added)."""
    keys = record_keys(setup)
    if plan.schedule is not None:
        kind, config = plan.schedule
        length = updates_in_run(setup) if config.interval == "step" else run_length(setup)[0]
        try:
            config = kind.defaults(config, length, setup.notices)
            plan.schedule = kind, config
        except ValueError as exc:
            check.add(("schedule",), str(exc))
        if hasattr(config, "monitor"):
            _check_monitor(check, ("schedule", "monitor"), config.monitor, keys)
    for kind, config, index in plan.callbacks:
        if index is not None and hasattr(config, "monitor"):
            _check_monitor(check, ("callbacks", index, "monitor"), config.monitor, keys)
    setup.control = plan
    setup.resolved["schedule"] = (None if plan.schedule is None else
                                  {"type": plan.schedule[0].registered_name,
                                   **plan.schedule[1].model_dump()})
    setup.resolved["callbacks"] = [{"type": kind.registered_name, **config.model_dump()}
                                   for kind, config, index in plan.callbacks
                                   if index is not None]  # not the implicit guard


def _check_monitor(check, path: tuple, monitor: str, keys: list[str]) -> None:
    if monitor in keys:
        return
    close = difflib.get_close_matches(monitor, keys, n=2)
    hint = ("did you mean " + " or ".join(map(repr, close)) + "? ") if close else ""
    check.add(path, f"{monitor!r} is not a value of the records; {hint}known: {', '.join(keys)}")


class Control:
    """Mixed into the Trainer: what ``train:``, ``schedule:`` and ``callbacks:`` drive.

    Attributes: ``max_epochs``, ``max_steps`` (None when unknown), ``schedule`` (or None),
    ``guard`` (the non-finite guard while ``fit`` runs, else None), ``complete`` (training
    counts as finished: all epochs or steps, or stopped early), ``stop_reason`` (why a
    callback stopped the run), ``notices`` (messages also sent to ``on_notice``).
    """

    def _init_control(self) -> list[Callback]:
        """Build the schedule and the spec's callbacks; returns the callbacks."""
        s = self.setup
        self.max_epochs, self.max_steps = run_length(s)
        self.complete, self.stop_reason, self.notices = False, None, []
        self.guard = self._guard = None
        plan: ControlPlan | None = getattr(s, "control", None)
        self.schedule: Schedule | None = None
        built: list[Callback] = []
        if plan is None:
            return built
        if plan.schedule is not None:
            kind, config = plan.schedule
            self.schedule = build_schedule(kind.registered_name, config, s.optimizer)
        names: dict[str, int] = {}
        for kind, config, _ in plan.callbacks:
            name = kind.registered_name
            key = name if name not in names else f"{name}_{names[name]}"
            names[name] = names.get(name, 0) + 1
            built.append(spec_callbacks.get(name)(config, self, key=key))
        self._guard = next((c for c in built if isinstance(c, callbacks_guard.NonFiniteGuard)
                            and c.active), None)
        return built

    @property
    def finished(self) -> bool:
        """All epochs (or steps) are done, or a callback ended training early."""
        if self.complete:
            return True
        if self.setup.spec.train.steps is not None:
            return self.step >= self.max_steps
        return self.epoch >= self.max_epochs

    def _before_step(self) -> None:
        """The learning rate of the next step; the guard notes what it needs."""
        if self.schedule is not None:  # by step: counts optimizer updates
            self.schedule.apply(self.setup.optimizer.iterations, self.epoch)
        if self.guard is not None:
            self.guard.before_step()

    def lower_learning_rate(self, factor: float) -> None:
        """Multiply the learning rate by ``factor`` from now on (through the schedule's
        ``scale`` when there is one, else the optimizer's rate); both are checkpointed."""
        if self.schedule is not None:
            self.schedule.scale *= factor
        else:
            self.setup.optimizer.learning_rate = self.setup.optimizer.learning_rate * factor

    def finish_early(self, reason: str) -> None:
        """End training after the current step or epoch as complete (early stopping)."""
        self.complete, self.stop_reason = True, reason
        self.request_stop(snapshot=False)
        self.notice(reason)

    def notice(self, message: str) -> None:
        self.notices.append(message)
        self.callbacks.on_notice(message)

    # ---- step records -----------------------------------------------------------------
    def _step_record(self, last_of_epoch: bool) -> dict[str, Any] | None:
        """The step record due after the step just done, if any (written to metrics.jsonl
        and given to the callbacks): every ``log_every_n_steps``; with validation every
        ``eval_every_n_steps`` and at the last step of a run by steps that ends mid-epoch
        (at an epoch's last step the epoch record holds the validation)."""
        train, n = self.setup.spec.train, self.step
        log = train.log_every_n_steps is not None and n % train.log_every_n_steps == 0
        last = train.steps is not None and n >= train.steps
        evaluate = not last_of_epoch and (
            last or (train.eval_every_n_steps is not None and n % train.eval_every_n_steps == 0))
        if not (log or evaluate):
            return None
        from trainctl.train.loop import evaluate as run_eval

        record: dict[str, Any] = {"kind": "step", "epoch": self.epoch + 1, "step": n,
                                  **self.running_logs()}
        s = self.setup
        if evaluate and s.splits.sizes.get("validation", 0) > 0:
            for key, value in run_eval(s, s.splits.validation).items():
                record[f"val_{key}"] = value
        record["learning_rate"] = float(s.optimizer.learning_rate)
        if self.run_dir is not None:
            self.run_dir.append_metrics(record)
        self.callbacks.on_step_record(n, record)
        if evaluate:
            if self.schedule is not None:
                self.schedule.observe(record)
            self.callbacks.on_evaluation(record)
        return record

    def _epoch_evaluated(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) ends with a validation."""
        n = self.setup.spec.train.eval_every_n_epochs
        last = self.max_epochs is not None and epoch >= self.max_epochs
        return epoch % n == 0 or last

    def _epoch_recorded(self, record: dict[str, Any], logged: dict[str, Any]) -> None:
        """After an epoch record is written: callbacks (``on_epoch_end`` gets ``logged``,
        the record as in metrics.jsonl, with ``input_wait``), then every monitor's check."""
        self.callbacks.on_epoch_end(self.epoch, logged)
        if self.schedule is not None:
            self.schedule.observe(record)
        self.callbacks.on_evaluation(record)
