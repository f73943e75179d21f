"""Callbacks that end a run: ``early_stopping`` and ``time_budget`` (the spec's
``callbacks:``; options in :mod:`trainctl.spec.kinds.callbacks`)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Callable

import torch

from trainctl.io import step_name
from trainctl.spec.kinds import callbacks as kinds
from trainctl.spec.kinds.callbacks import monitor_mode
from trainctl.train.callbacks import Callback, spec_callbacks

if TYPE_CHECKING:
    from trainctl.train.loop import Trainer


@spec_callbacks.register("early_stopping")
class EarlyStopping(Callback, kinds.EarlyStopping):
    """Keras' EarlyStopping: at each check of ``monitor`` (see ``on_evaluation``), an
    improvement is a change beyond ``min_delta`` in the mode's direction (a non-finite
    value never is); after ``patience`` checks in a row without one (0 and 1: the first),
    the run stops and counts as complete.

    State (kept in checkpoints): ``best``, ``wait`` (checks without improvement),
    ``best_step`` and ``stopped``. With ``restore_best_weights`` the best weights are kept
    in memory; after a resume they are read from the run's checkpoint of ``best_step``
    (there is one when ``checkpoint.monitor`` is the same value), else a notice says the
    last weights are kept.
    """

    def __init__(self, config, trainer: "Trainer", key: str = "early_stopping"):
        self.config, self.trainer, self.state_key = config, trainer, key
        self.mode = monitor_mode(config.monitor, config.mode)
        self.best: float | None = None
        self.wait, self.best_step, self.stopped = 0, None, False
        self.best_weights: dict[str, torch.Tensor] | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        d = self.config.min_delta
        return value < self.best - d if self.mode == "min" else value > self.best + d

    def on_evaluation(self, record: dict[str, Any]) -> None:
        value = record.get(self.config.monitor)
        if value is None or self.stopped:
            return
        value = float(value)
        if math.isfinite(value) and self._improved(value):
            self.best, self.wait, self.best_step = value, 0, self.trainer.step
            if self.config.restore_best_weights:
                self.best_weights = {k: v.detach().clone()
                                     for k, v in self.trainer.setup.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= max(self.config.patience, 1):  # Keras: wait >= patience
            self.stopped = True
            best = ("none finite" if self.best is None
                    else f"best {self.best:.6g} at step {self.best_step}")
            self.trainer.finish_early(
                f"early_stopping: {self.config.monitor} did not improve for {self.wait} "
                f"check(s) ({best})")

    def on_train_complete(self) -> None:
        if not (self.stopped and self.config.restore_best_weights and self.best_step is not None):
            return
        weights = self.best_weights or self._weights_on_disk()
        if weights is None:
            self.trainer.notice(f"early_stopping: the best weights (step {self.best_step}) were "
                                f"not kept on disk; keeping the last weights (set "
                                f"checkpoint.monitor: {self.config.monitor} to keep them)")
            return
        self.trainer.setup.model.load_state_dict(weights)
        self.trainer.notice(f"early_stopping: restored the weights of step {self.best_step} "
                            f"({self.config.monitor} {self.best:.6g})")

    def _weights_on_disk(self) -> dict[str, torch.Tensor] | None:
        ck = self.trainer.checkpointer
        if ck is None:
            return None
        from trainctl.io import load_checkpoint

        path = ck.store.root / step_name(self.best_step)
        try:
            weights, _, state = load_checkpoint(path)
        except Exception:  # noqa: BLE001 - absent or unreadable: reported by the caller
            return None
        return weights if state.get("step") == self.best_step else None

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.config.monitor, "mode": self.mode, "best": self.best,
                "wait": self.wait, "best_step": self.best_step, "stopped": self.stopped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("monitor") != self.config.monitor or state.get("mode") != self.mode:
            return  # monitoring something else now: start afresh
        self.best, self.wait = state.get("best"), int(state.get("wait", 0))
        self.best_step, self.stopped = state.get("best_step"), bool(state.get("stopped"))
        self.best_weights = None


@spec_callbacks.register("time_budget")
class TimeBudget(Callback, kinds.TimeBudget):
    """Asks the trainer to stop with a checkpoint after the step that exhausts the budget
    (wall clock from ``on_train_begin``; ``clock`` is injectable for tests)."""

    def __init__(self, config, trainer: "Trainer", key: str = "time_budget",
                 clock: Callable[[], float] = time.monotonic):
        self.config, self.trainer, self.clock = config, trainer, clock
        self.budget = config.total_seconds
        self.start: float | None = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.start = self.clock()

    def on_batch_end(self, step: int, batch_size: int, loss) -> None:
        if self.start is None or self.clock() - self.start < self.budget:
            return
        if "stop" not in self.trainer.requests:
            self.trainer.stop_reason = (f"time_budget: {self.budget:g} s of training used up "
                                        f"after step {step}")
            self.trainer.request_stop(snapshot=True)
