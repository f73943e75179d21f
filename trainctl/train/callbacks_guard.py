"""``nonfinite_guard``: no update with a non-finite loss or gradient ever reaches the weights.

Before every step of ``Trainer.fit`` the guard notes the random generators (and, with
``rollback``, keeps an in-memory snapshot of weights and optimizer state every
``snapshot_every_n_steps`` steps); between the gradients and the update,
:meth:`NonFiniteGuard.check` looks at the loss and every gradient (one host-device
synchronisation per step). When one is NaN or ±inf the update is not applied, the batch
is re-run to find the first op that produced a non-finite value
(:func:`trainctl.train.nonfinite.locate_nonfinite`), and the policy acts: ``stop``,
``skip_batch`` or ``rollback`` (options in :mod:`trainctl.spec.kinds.callbacks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from trainctl.autodiff.tensor import Tensor
from trainctl.backend import random as backend_random
from trainctl.errors import TrainctlError
from trainctl.spec.kinds import callbacks as kinds
from trainctl.train.callbacks import Callback, spec_callbacks
from trainctl.train.nonfinite import locate_nonfinite

if TYPE_CHECKING:
    from trainctl.train.loop import Trainer


class NonFiniteError(TrainctlError):
    """Training stopped on a non-finite loss or gradient (the message says where it first
    appeared and which checkpoint holds the state before the batch). Exit code 1."""

    exit_code = 1


def all_finite(loss: Tensor, grads: Sequence[Any]) -> bool:
    """Whether the loss and every gradient are finite (one device synchronisation)."""
    flags = [torch.isfinite(loss.data).all()]
    for g in grads:
        if g is not None:
            flags.append(torch.isfinite(g.data if isinstance(g, Tensor) else g).all())
    return bool(torch.stack(flags).all())


def _rng_now() -> tuple[dict, torch.Tensor]:
    return backend_random.rng_state(), torch.get_rng_state()


def _set_rng(state: tuple[dict, torch.Tensor]) -> None:
    backend_random.set_rng_state(state[0])
    torch.set_rng_state(state[1])


@spec_callbacks.register(kinds.GUARD)
class NonFiniteGuard(Callback, kinds.NonFiniteGuard):
    """See the module docstring. ``refused`` tells the loop the last step applied no update.

    State (kept in checkpoints): ``skipped`` and ``rollbacks`` (totals), ``in_a_row`` and
    ``last_failure``. The in-memory snapshot is not: after a resume the first snapshot is
    the resumed state.
    """

    def __init__(self, config, trainer: "Trainer", key: str = "nonfinite_guard"):
        self.config, self.trainer, self.state_key = config, trainer, key
        self.refused = False
        self.skipped = self.rollbacks = self.in_a_row = 0
        self.snapshot: tuple | None = None
        self.last_failure: int | None = None  # trainer step of the last non-finite batch
        self._rng_before: tuple | None = None
        self._frozen: list = []

    @property
    def active(self) -> bool:
        return self.config.policy != "off"

    def before_step(self) -> None:
        """Called by the loop before each step (generators, values of the non-trainable
        variables a forward pass updates (batch normalization's moving statistics); the
        rollback snapshot)."""
        self.refused = False
        self._rng_before = _rng_now()
        t = self.trainer
        self._frozen = [(v, v.data.clone()) for v in t.setup.model.variables if not v.trainable]
        if self.config.policy == "rollback" and (
                self.snapshot is None or t.step % self.config.snapshot_every_n_steps == 0):
            weights = {k: v.detach().clone() for k, v in t.setup.model.state_dict().items()}
            self.snapshot = (t.step, weights, t.setup.optimizer.state_dict())

    def check(self, loss: Tensor, grads: Sequence[Any], x: Tensor, y: Tensor) -> bool:
        """True when the update may be applied; otherwise act on the policy and return
        False (or raise NonFiniteError)."""
        t = self.trainer
        if all_finite(loss, grads):
            # in a row: skips without a good step between, rollbacks without
            # snapshot_every_n_steps good steps since the last one
            if (self.config.policy == "skip_batch" or self.last_failure is None or
                    t.step - self.last_failure >= self.config.snapshot_every_n_steps):
                self.in_a_row = 0
            return True
        self.refused, self.last_failure = True, t.step
        self._restore_frozen()  # the failing forward pass updated them with this batch
        after = _rng_now()
        _set_rng(self._rng_before)  # the same dropout masks as the failing step
        finding = locate_nonfinite(t.setup, x, y)
        _set_rng(after)
        self._restore_frozen()
        where = (f"non-finite {'loss' if not bool(torch.isfinite(loss.data).all()) else 'gradient'}"
                 f" at step {t.step + 1} (epoch {t.epoch + 1}, batch {t.batch + 1}): {finding}")
        policy = self.config.policy
        self.in_a_row += 1
        limit = self.config.max_skips if policy == "skip_batch" else self.config.max_rollbacks
        if policy == "stop" or self.in_a_row > limit:
            self._stop(where, policy if policy == "stop" else f"{policy}, {self.in_a_row} in a row")
        if policy == "skip_batch":
            self.skipped += 1
            t.notice(f"{where}; batch skipped (nonfinite_guard)")
        else:
            self._rollback(where)
        return False

    def _restore_frozen(self) -> None:
        for v, value in self._frozen:
            v.data.copy_(value)

    def _rollback(self, where: str) -> None:
        t = self.trainer
        step, weights, (slots, meta) = self.snapshot
        t.setup.model.load_state_dict(weights)
        lr = t.setup.optimizer.learning_rate
        t.setup.optimizer.load_state_dict(slots, meta)
        t.setup.optimizer.learning_rate = lr
        t.lower_learning_rate(self.config.factor)
        self.rollbacks += 1
        t.notice(f"{where}; rolled back to the weights of step {step} and multiplied the "
                 f"learning rate by {self.config.factor:g} (nonfinite_guard)")

    def _stop(self, where: str, policy: str) -> None:
        t = self.trainer
        note = ""
        if t.checkpointer is not None:
            _set_rng(self._rng_before)  # the checkpoint is the state before this batch
            path = t.checkpointer.save("stop")
            note = (f"; {path} holds the state before this batch (resume it with a lower "
                    f"learning rate and --apply-optimizer-changes)")
        raise NonFiniteError(f"{where}; stopped (nonfinite_guard policy {policy}){note}")

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.config.policy, "skipped": self.skipped,
                "rollbacks": self.rollbacks, "in_a_row": self.in_a_row,
                "last_failure": self.last_failure}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = int(state.get("skipped", 0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self.in_a_row = int(state.get("in_a_row", 0))
        self.last_failure = state.get("last_failure")
