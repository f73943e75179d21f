"""``nonfinite_guard``: no update with a non-finite loss or gradient ever reaches the weights.

With ``skip_batch`` and ``rollback``, before every step of ``Trainer.fit`` the guard notes
the random generators (and, with ``rollback``, keeps an in-memory snapshot of weights and
optimizer state every ``snapshot_every_n_steps`` steps); between the gradients and the
update, :meth:`NonFiniteGuard.check` looks at the loss and every gradient (one host-device
synchronisation per step). When one is NaN or ±inf the update is not applied, the batch
is re-run to find the first op that produced a non-finite value
(:func:`trainctl.train.nonfinite.locate_nonfinite`), and the policy acts: ``stop``,
``skip_batch`` or ``rollback`` (options in :mod:`trainctl.spec.kinds.callbacks`).

``stop`` (the default) costs no synchronisation per step: each step only computes a
device-side flag and notes its batch and generator states; :meth:`NonFiniteGuard.settle`
reads the flags at once wherever the trainer reads the device anyway (step records, the
progress display, evaluations, checkpoints, the end of an epoch) and at least every
:data:`MAX_PENDING` steps. When a flag is set, the weights, optimizer, metrics and
generators are put back as they were at the first unchecked step (a snapshot taken there:
one copy of the weights and optimizer state per check), the good steps before the first
bad one are replayed (the same batches and random draws, so the state is bit for bit the
one before the bad batch) and the guard stops there as the synchronous check would: same
report, same checkpoint.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

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


MAX_PENDING = 100
"""The most steps the ``stop`` policy leaves unchecked (their batches are kept until then)."""


def finite_flags(loss: Tensor, grads: Sequence[Any]) -> torch.Tensor:
    """``[loss finite, loss and every gradient finite]``: a bool tensor on the device (no
    synchronisation)."""
    flags = [torch.isfinite(g.data if isinstance(g, Tensor) else g).all()
             for g in grads if g is not None]
    loss_ok = torch.isfinite(loss.data).all()
    every = torch.stack([loss_ok, *flags]).all()
    return torch.stack([loss_ok, every])


def all_finite(loss: Tensor, grads: Sequence[Any]) -> bool:
    """Whether the loss and every gradient are finite (one device synchronisation)."""
    return bool(finite_flags(loss, grads)[1])


class _Pending(NamedTuple):
    """An unchecked step of the ``stop`` policy: where it ran, what it ran on."""

    step: int  # trainer step before it
    epoch: int
    batch: int
    rng: tuple
    x: Tensor
    y: Tensor
    sums: tuple  # the trainer's epoch sums before it
    flags: torch.Tensor  # finite_flags of the step


def _metric_copy(metric) -> dict[str, Any]:
    """A metric's attributes, tensors cloned on their device (no synchronisation)."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else copy.copy(v)
            for k, v in vars(metric).items()}


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
        self._pending: list[_Pending] = []
        self._window: tuple | None = None  # the state before the first pending step
        self._replaying = False

    @property
    def deferred(self) -> bool:
        """Whether steps are checked at :meth:`settle` rather than one by one."""
        return self.config.policy == "stop"

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
        if self.deferred:
            if self._replaying:
                return
            if len(self._pending) >= MAX_PENDING:
                self.settle()
            if not self._pending:  # the state a replay starts from
                opt = t.setup.optimizer.state_dict()
                self._window = ({k: v.detach().clone() for k, v in
                                 t.setup.model.state_dict().items()}, opt,
                                [_metric_copy(m) for m in t.setup.metrics])
            return
        self._frozen = [(v, v.data.clone()) for v in t.setup.model.variables if not v.trainable]
        if self.config.policy == "rollback" and (
                self.snapshot is None or t.step % self.config.snapshot_every_n_steps == 0):
            weights = {k: v.detach().clone() for k, v in t.setup.model.state_dict().items()}
            self.snapshot = (t.step, weights, t.setup.optimizer.state_dict())

    def check(self, loss: Tensor, grads: Sequence[Any], x: Tensor, y: Tensor) -> bool:
        """True when the update may be applied; otherwise act on the policy and return
        False (or raise NonFiniteError)."""
        t = self.trainer
        if self.deferred:
            if not self._replaying:
                self._pending.append(_Pending(t.step, t.epoch, t.batch, self._rng_before, x, y,
                                              t._epoch_sums, finite_flags(loss, grads)))
            return True
        if all_finite(loss, grads):
            # in a row: skips without a good step between, rollbacks without
            # snapshot_every_n_steps good steps since the last one
            if (self.config.policy == "skip_batch" or self.last_failure is None or
                    t.step - self.last_failure >= self.config.snapshot_every_n_steps):
                self.in_a_row = 0
            return True
        self.refused, self.last_failure = True, t.step
        self._restore_frozen()  # the failing forward pass updated them with this batch
        return self._failed(bool(torch.isfinite(loss.data).all()), x, y)

    def _failed(self, loss_finite: bool, x: Tensor, y: Tensor) -> bool:
        """Diagnose the step about to run on (x, y) from ``_rng_before``; act on the policy."""
        t = self.trainer
        after = _rng_now()
        _set_rng(self._rng_before)  # the same dropout masks as the failing step
        finding = locate_nonfinite(t.setup, x, y)
        _set_rng(after)
        self._restore_frozen()
        where = (f"non-finite {'gradient' if loss_finite else 'loss'}"
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

    def settle(self) -> None:
        """Check the pending steps of the ``stop`` policy (one synchronisation); on a
        non-finite one, go back to the state before it and stop (NonFiniteError)."""
        if not self._pending or self._replaying:
            return
        pending, self._pending = self._pending, []
        flags = torch.stack([p.flags for p in pending]).tolist()  # the one synchronisation
        bad = next((i for i, (_, ok) in enumerate(flags) if not ok), None)
        if bad is None:
            return
        self._replay(pending[:bad])
        t, failing = self.trainer, pending[bad]
        t.step, t.epoch, t.batch, t._epoch_sums = (failing.step, failing.epoch, failing.batch,
                                                   failing.sums)
        self._rng_before = failing.rng  # and the values the diagnosis re-run changes:
        self._frozen = [(v, v.data.clone()) for v in t.setup.model.variables if not v.trainable]
        _set_rng(failing.rng)
        self.refused, self.last_failure = True, t.step
        self._failed(bool(flags[bad][0]), failing.x, failing.y)

    def _replay(self, good: list[_Pending]) -> None:
        """Back to the state before the first pending step, then those steps again."""
        t = self.trainer
        s = t.setup
        weights, (slots, meta), metrics = self._window
        s.model.load_state_dict(weights)
        s.optimizer.load_state_dict(slots, meta)
        for m, state in zip(s.metrics, metrics):
            for key, value in state.items():
                setattr(m, key, value)
        self._replaying = True
        try:
            for p in good:
                t.step, t.epoch, t.batch = p.step, p.epoch, p.batch
                _set_rng(p.rng)
                t._before_step()
                _, pred = t.train_step(p.x, p.y)
                for m in s.metrics:
                    m.update(p.y, pred)
        finally:
            self._replaying = False

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
