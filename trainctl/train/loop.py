"""The training loop: one GradientTape per step (eager; ``execution: graph`` replays the
step traced by :mod:`trainctl.train.graph_step`), optimizer update, per-epoch
validation, metrics.jsonl and a final checkpoint.

Losses and metrics are averaged per sample (a short last batch counts by its size) and
accumulated on the device; the loop reads them once per epoch, so the hot path has no
host-device synchronisation unless a progress reporter asks for the live loss.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from trainctl.autodiff import GradientTape, no_grad
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import asks_auto, manual_seed
from trainctl.backend.precision import precision_scope
from trainctl.data import Dataset
from trainctl.io import RunDir, save_checkpoint
from trainctl.nn.regularizers import regularization_loss
from trainctl.optim.loss_scale import DynamicLossScaler
from trainctl.train import state as train_state
from trainctl.train.callbacks import Callback, CallbackList
from trainctl.train.checkpointer import Checkpointer
from trainctl.train.control import Control
from trainctl.train.graph_step import freeze_once, graph_steps
from trainctl.train.setup import Setup


def to_tensors(batch, device: torch.device) -> tuple[Tensor, Tensor]:
    """A (features, labels) numpy batch as Tensors on ``device`` (no copy on the CPU)."""
    x, y = batch
    tx = torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True)
    ty = torch.from_numpy(np.ascontiguousarray(y)).to(device, non_blocking=True)
    return Tensor(tx), Tensor(ty)


#: batches made and copied to the device ahead of the step that trains on them; the
#: thread refills the buffer once half of it is used (fewer thread hand-offs per batch:
#: with 2, input_wait on the small example specs was several times higher)
PREFETCH_BATCHES = 8


def device_batches(ds: Dataset, device: torch.device, epoch: int = 0,
                   position: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
    """The (features, labels) batches of epoch ``epoch`` of ``ds`` from batch ``position``
    on, as Tensors on ``device``, made by a background thread ``PREFETCH_BATCHES`` ahead
    (``Dataset.prefetch_to_device``: pinned memory and non-blocking copies on CUDA, the
    arrays' own memory on the CPU). The same batches as ``ds.iterate(epoch, position)``;
    closing this generator stops the thread."""
    batches = ds.prefetch_to_device(device, PREFETCH_BATCHES).iterate(epoch, position)
    try:
        for x, y in batches:
            yield Tensor(x), Tensor(y)
    finally:
        batches.close()


class Trainer(Control):
    """Runs ``setup`` for ``spec.train.epochs`` epochs or ``spec.train.steps`` steps, with
    the spec's schedule and callbacks (:class:`~trainctl.train.control.Control`).

    ``run_dir`` (optional) receives one JSON line per epoch in metrics.jsonl, checkpoints as
    the spec's ``checkpoint:`` section says, and the final one in ``checkpoints/final``.

    Between steps the trainer is in a resumable state: ``step`` (batches trained on: one
    optimizer update each, or one per N with ``gradient_accumulation_steps``),
    ``epoch`` (epochs completed) and ``batch`` (batches of the next epoch done) say where;
    :func:`trainctl.train.state.restore` puts a checkpoint back (see trainctl.train.resume).
    :meth:`request_stop` / :meth:`request_snapshot` (signal handlers call them) act after
    the current step; ``stop_signal`` then tells which signal stopped the run.
    """

    def __init__(self, setup: Setup, run_dir: RunDir | None = None,
                 callbacks: Iterable[Callback] = ()):
        self.setup = setup
        self.run_dir = run_dir
        self.callbacks = CallbackList(callbacks)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._epoch_sums: tuple[torch.Tensor | None, int] = (None, 0)
        self.epoch, self.batch = 0, 0
        self.resumed = False
        self.requests: set[str] = set()
        self.stop_signal: int | None = None
        self._progress: dict[str, Any] | None = None
        self._epoch_start = time.perf_counter()
        self._epoch_elapsed = 0.0
        self.input_wait = 0.0  # of the last epoch: seconds waiting for batches / training seconds
        self.checkpointer = Checkpointer(self, run_dir) if run_dir is not None else None
        self.scaler = (DynamicLossScaler(setup.device) if setup.spec.precision == "fp16"
                       else None)  # float16 runs: dynamic loss scaling
        self.callbacks.callbacks[:0] = self._init_control()  # the spec's schedule, callbacks

    # ---- one step ---------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Forward, loss, gradients, update. Returns (per-sample loss, predictions), detached."""
        s = self.setup
        graph = graph_steps(s)
        if graph is not None and self.scaler is None:  # execution: graph (fp16 loss
            return graph.train_step(self.guard, x, y)  # scaling stays eager for now)
        freeze_once()  # set-up done: long-lived objects out of the GC's generations
        params = s.model.trainable_variables
        with GradientTape() as tape:
            per_sample, loss, pred = s.training_loss(x, y)  # + kernel/bias regularizers
            # fp16: the gradients of the scaled loss, unscaled; the step skipped on inf/NaN
            scaled = loss if self.scaler is None else loss * Tensor(self.scaler.scale)
        grads = self.gradients(tape, scaled, params)
        if self.scaler is not None:
            grads = [None if g is None else Tensor(g) for g in self.scaler.unscale(
                [None if g is None else g.data for g in grads])]
            skip = self.scaler.should_skip()
            self.scaler.update()
            if skip:
                return per_sample.detach(), pred.detach()
        if self.guard is not None and not self.guard.check(loss, grads, x, y):
            return per_sample.detach(), pred.detach()  # no update: the guard's policy acted
        s.optimizer.step(grads, weight=x.shape[0])  # weight: in a gradient accumulation
        return per_sample.detach(), pred.detach()

    def gradients(self, tape: GradientTape, loss: Tensor, params: list) -> list:
        """d(loss)/d(params) (data-parallel training overrides it to all-reduce them)."""
        return tape.gradient(loss, params)

    # ---- loops ------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train all epochs (or steps); returns the per-epoch records (also in
        metrics.jsonl). Raises NonFiniteError when the non-finite guard stops the run."""
        s = self.setup
        # The training stream (dropout masks) starts from the seed here, not from wherever
        # model building left the generators, so a run does not depend on what ran before.
        # A resumed run has its generators restored from the checkpoint instead, and a
        # trainer stopped earlier goes on from where it stopped.
        if self.step == 0 and not self.resumed:
            rank = s.shard[1] if s.shard is not None else 0  # own dropout masks per replica
            manual_seed((training_seed(s.spec.seed) + rank) % 2**63)
        self.callbacks.on_train_begin({"epochs": self.max_epochs, "steps": self.max_steps,
                                       "train_size": s.splits.sizes["train"],
                                       "device": str(s.device), "params": s.model.count_params(),
                                       "device_auto": asks_auto(s.spec.device),
                                       "running": self.running_logs,
                                       "initial_epoch": self.epoch, "initial_step": self.step})
        self.guard = self._guard
        try:
            with precision_scope(s.spec.precision):  # matmul/conv dtype, TF32 flags
                while not self.finished and "stop" not in self.requests:
                    record = self._train_epoch(self.epoch + 1)
                    if record is None:
                        break  # stopped between two steps of the epoch
                    self.epoch, self.batch = self.epoch + 1, 0
                    self.history.append(record)
                    # + the share of training time waiting, in metrics.jsonl and for the
                    # reporters (--log-format json), not in the history
                    logged = {**record, "input_wait": self.input_wait}
                    if self.run_dir is not None:
                        self.run_dir.append_metrics(logged)
                    self._epoch_recorded(record, logged)
                    if self.checkpointer is not None:
                        self.checkpointer.at_epoch_end(record, "snapshot" in self.requests)
                    self.requests.discard("snapshot")
                if self.finished:
                    self.callbacks.on_train_complete()
                    if self.checkpointer is not None:
                        self.checkpointer.save_final()
        finally:
            self.guard = None
        self.callbacks.on_train_end(self.history)
        return self.history

    def request_stop(self, snapshot: bool = True, signum: int | None = None) -> None:
        """Stop after the current step, writing a checkpoint first if ``snapshot`` (and the
        trainer has a run directory). Safe to call from a signal handler."""
        self.requests.add("stop")
        if snapshot:
            self.requests.add("snapshot")
        if signum is not None:
            self.stop_signal = signum

    def request_snapshot(self) -> None:
        """Write a checkpoint after the current step and keep training."""
        self.requests.add("snapshot")

    def _after_step(self, record: dict[str, Any] | None = None) -> bool:
        """Periodic, requested or best (``record``: an evaluation step's) checkpoint between
        two steps of an epoch; True to stop (requested, or the last step of a run by steps)."""
        if self.checkpointer is not None:
            kind = "stop" if self.stop_reason else "signal"
            self.checkpointer.at_step(record, "snapshot" in self.requests, kind)
        self.requests.discard("snapshot")
        return "stop" in self.requests or self.finished

    def stateful_callbacks(self) -> dict[str, Any]:
        """Objects whose state a checkpoint keeps, by key: the checkpointer's best value
        and every callback with ``state_dict``/``load_state_dict`` (key: its ``state_key``
        or class name)."""
        found = {getattr(c, "state_key", type(c).__name__): c for c in self.callbacks.callbacks
                 if hasattr(c, "state_dict") and hasattr(c, "load_state_dict")}
        if self.checkpointer is not None:
            found[self.checkpointer.state_key] = self.checkpointer
        if self.scaler is not None:
            found["loss_scale"] = self.scaler
        return found

    def epoch_seconds(self) -> float:
        """Seconds spent in the epoch in progress (over all the runs of a resumed one)."""
        return self._epoch_elapsed + time.perf_counter() - self._epoch_start

    def _train_epoch(self, epoch: int) -> dict[str, Any] | None:
        """Train epoch ``epoch`` (1-based) from batch ``self.batch`` on; its record, or None
        when a stop was requested before its end."""
        s = self.setup
        self._epoch_start, self._epoch_elapsed = time.perf_counter(), 0.0
        ds: Dataset = s.splits.train
        steps = ds.cardinality()
        self.callbacks.on_epoch_begin(epoch, steps - self.batch if steps >= 0 else steps)
        total, count = None, 0
        for m in s.metrics:
            m.reset()
        if self._progress is not None:  # resumed between two steps of this epoch
            total, count, self._epoch_elapsed = train_state.restore_progress(self, self._progress)
            self._progress = None
        self._epoch_sums = (total, count)
        batches = _Timed(device_batches(ds, s.device, epoch - 1, self.batch))
        train_start = time.perf_counter()
        for (x, y), last in _with_last(batches):
            self._before_step()
            per_sample, pred = self.train_step(x, y)
            self.step += 1
            batch_sum = per_sample.data.to(torch.float64).sum()
            if self.guard is None or not self.guard.refused:  # a refused batch counts nowhere
                total = batch_sum if total is None else total + batch_sum
                count += x.shape[0]
                self._epoch_sums = (total, count)
                for m in s.metrics:
                    m.update(y, pred)
            self.callbacks.on_batch_end(self.step, x.shape[0], Tensor(batch_sum / x.shape[0]))
            self.batch += 1
            step_record = self._step_record(last)
            if not last and self._after_step(step_record):
                self.settle()
                self._progress = train_state.capture_progress(self)  # for a later fit()
                return None
        self.settle()  # the guard's pending checks, before the epoch's values are read
        s.optimizer.flush()  # gradients accumulated in this epoch and not yet applied
        self.input_wait = round(batches.waited / max(time.perf_counter() - train_start, 1e-9), 4)
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "step": self.step,
                                  "loss": float(total.item()) / count if count else float("nan")}
        penalty = regularization_loss(s.model.layers)  # apart from "loss"; at the epoch's end
        if penalty is not None:
            record["regularization_loss"] = float(penalty.item())
        for m in s.metrics:
            record.update(m.results())  # per_class metrics give one key per class
        if s.splits.sizes.get("validation", 0) > 0 and self._epoch_evaluated(epoch):
            for key, value in evaluate(s, s.splits.validation).items():
                record[f"val_{key}"] = value
        record["learning_rate"] = float(s.optimizer.learning_rate)
        record["seconds"] = round(self.epoch_seconds(), 4)
        return record

    def running_logs(self) -> dict[str, float]:
        """The current epoch's running loss and metrics (reads the device: call sparingly)."""
        self.settle()
        total, count = self._epoch_sums
        logs = {"loss": float(total.item()) / count} if total is not None and count else {}
        for m in self.setup.metrics:
            if m.count:
                logs.update(m.results())
        return logs

    def settle(self) -> None:
        """Run the non-finite guard's pending checks (``policy: stop`` checks steps where
        the device is read anyway; see trainctl.train.callbacks_guard). Raises
        NonFiniteError when one of them failed."""
        if self.guard is not None:
            self.guard.settle()

    def save(self, path, kind: str = "manual"):
        """Write a complete checkpoint of the trainer's current state at ``path``."""
        self.settle()
        return save_checkpoint(path, *train_state.capture(self, kind))


class _Timed:
    """Iterates ``items``, adding up in ``waited`` the seconds spent waiting for them."""

    def __init__(self, items: Iterable[Any]):
        self._it, self.waited = iter(items), 0.0

    def __iter__(self) -> "_Timed":
        return self

    def __next__(self) -> Any:
        start = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.waited += time.perf_counter() - start


def _with_last(items: Iterable[Any]) -> Iterator[tuple[Any, bool]]:
    """(item, is it the last one) pairs, reading one item ahead."""
    it = iter(items)
    try:
        current = next(it)
    except StopIteration:
        return
    for following in it:
        yield current, False
        current = following
    yield current, True


def training_seed(seed: int) -> int:
    """The seed of the random stream used during training (distinct from initialisation)."""
    return (seed * 0x9E3779B1 + 0x7F4A7C15) % (2**63)


def evaluate(setup: Setup, dataset: Dataset) -> dict[str, float]:
    """Mean loss and metrics over ``dataset`` (per sample), in evaluation mode, no tape,
    in the spec's ``precision``; with the optimizer's moving average of the weights when it
    keeps one (``use_ema``)."""
    s = setup
    metrics = [m.fresh() for m in s.metrics]  # same options, empty state
    total, count = None, 0
    graph = graph_steps(s)
    with no_grad(), s.optimizer.ema_weights(), precision_scope(s.spec.precision):
        epoch, dataset.epoch = dataset.epoch, dataset.epoch + 1   # as iter(dataset) does
        for x, y in device_batches(dataset, s.device, epoch):
            if graph is not None:
                per_sample, pred = graph.eval(x, y)
            else:
                pred = s.model(x, training=False)
                per_sample = s.loss(y, pred)
            batch_sum = per_sample.data.to(torch.float64).sum()
            total = batch_sum if total is None else total + batch_sum
            count += x.shape[0]
            for m in metrics:
                m.update(y, pred)
    out = {"loss": float(total.item()) / count if count else float("nan")}
    for m in metrics:
        out.update(m.results())
    return out
