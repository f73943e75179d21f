"""The training loop (eager mode): one GradientTape per step, optimizer update, per-epoch
validation, metrics.jsonl and a final checkpoint.

Losses and metrics are averaged per sample (a short last batch counts by its size) and
accumulated on the device; the loop reads them once per epoch, so the hot path has no
host-device synchronisation unless a progress reporter asks for the live loss.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Iterable

import numpy as np
import torch

from trainctl.autodiff import GradientTape, no_grad, ops
from trainctl.autodiff.tensor import Tensor
from trainctl.backend import manual_seed
from trainctl.data import Dataset
from trainctl.io import RunDir, save_checkpoint
from trainctl.train.callbacks import Callback, CallbackList
from trainctl.train.setup import Setup


def to_tensors(batch, device: torch.device) -> tuple[Tensor, Tensor]:
    """A (features, labels) numpy batch as Tensors on ``device`` (no copy on the CPU)."""
    x, y = batch
    tx = torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True)
    ty = torch.from_numpy(np.ascontiguousarray(y)).to(device, non_blocking=True)
    return Tensor(tx), Tensor(ty)


class Trainer:
    """Runs ``setup`` for ``spec.train.epochs`` epochs.

    ``run_dir`` (optional) receives one JSON line per epoch in metrics.jsonl and the final
    checkpoint in ``checkpoints/final``.
    """

    def __init__(self, setup: Setup, run_dir: RunDir | None = None,
                 callbacks: Iterable[Callback] = ()):
        self.setup = setup
        self.run_dir = run_dir
        self.callbacks = CallbackList(callbacks)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self._epoch_sums: tuple[torch.Tensor | None, int] = (None, 0)

    # ---- one step ---------------------------------------------------------------------
    def train_step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Forward, loss, gradients, update. Returns (per-sample loss, predictions), detached."""
        s = self.setup
        params = s.model.trainable_variables
        with GradientTape() as tape:
            pred = s.model(x, training=True)
            per_sample = s.loss(y, pred)
            loss = ops.mean(per_sample)
        grads = tape.gradient(loss, params)
        s.optimizer.step(grads)
        return per_sample.detach(), pred.detach()

    # ---- loops ------------------------------------------------------------------------
    def fit(self) -> list[dict[str, Any]]:
        """Train all epochs; returns the per-epoch records (also in metrics.jsonl)."""
        s = self.setup
        epochs = s.spec.train.epochs
        # The training stream (dropout masks) starts from the seed here, not from wherever
        # model building left the generators, so a run does not depend on what ran before.
        manual_seed(training_seed(s.spec.seed))
        self.callbacks.on_train_begin({"epochs": epochs, "train_size": s.splits.sizes["train"],
                                       "device": str(s.device), "params": s.model.count_params(),
                                       "running": self.running_logs})
        for epoch in range(1, epochs + 1):
            record = self._train_epoch(epoch)
            self.history.append(record)
            if self.run_dir is not None:
                self.run_dir.append_metrics(record)
            self.callbacks.on_epoch_end(epoch, record)
        if self.run_dir is not None:
            self.save(self.run_dir.checkpoints / "final", epoch=epochs)
        self.callbacks.on_train_end(self.history)
        return self.history

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        s = self.setup
        start = time.perf_counter()
        ds: Dataset = s.splits.train
        steps = ds.cardinality()
        self.callbacks.on_epoch_begin(epoch, steps)
        total, count = None, 0
        self._epoch_sums = (None, 0)
        for m in s.metrics:
            m.reset()
        for batch in ds.iterate(epoch=epoch - 1):
            x, y = to_tensors(batch, s.device)
            per_sample, pred = self.train_step(x, y)
            self.step += 1
            batch_sum = per_sample.data.to(torch.float64).sum()
            total = batch_sum if total is None else total + batch_sum
            count += x.shape[0]
            self._epoch_sums = (total, count)
            for m in s.metrics:
                m.update(y, pred)
            self.callbacks.on_batch_end(self.step, x.shape[0], Tensor(batch_sum / x.shape[0]))
        record: dict[str, Any] = {"epoch": epoch, "step": self.step,
                                  "loss": float(total.item()) / count if count else float("nan")}
        for m in s.metrics:
            record[m.name] = m.result()
        if s.splits.sizes.get("validation", 0) > 0:
            for key, value in evaluate(s, s.splits.validation).items():
                record[f"val_{key}"] = value
        record["learning_rate"] = float(s.optimizer.learning_rate)
        record["seconds"] = round(time.perf_counter() - start, 4)
        return record

    def running_logs(self) -> dict[str, float]:
        """The current epoch's running loss and metrics (reads the device: call sparingly)."""
        total, count = self._epoch_sums
        logs = {"loss": float(total.item()) / count} if total is not None and count else {}
        for m in self.setup.metrics:
            if m.count:
                logs[m.name] = m.result()
        return logs

    def save(self, path, epoch: int):
        """Write a checkpoint of weights, optimizer state and run state at ``path``."""
        s = self.setup
        return save_checkpoint(path, s.model.state_dict(), s.optimizer.state_dict(), {
            "step": self.step, "epoch": epoch, "seed": s.spec.seed, "spec_name": s.spec.name,
            "spec_sha256": hashlib.sha256(s.spec.to_yaml().encode()).hexdigest(),
        })


def training_seed(seed: int) -> int:
    """The seed of the random stream used during training (distinct from initialisation)."""
    return (seed * 0x9E3779B1 + 0x7F4A7C15) % (2**63)


def evaluate(setup: Setup, dataset: Dataset) -> dict[str, float]:
    """Mean loss and metrics over ``dataset`` (per sample), in evaluation mode, no tape."""
    s = setup
    metrics = [type(m)(from_logits=m.from_logits) for m in s.metrics]
    for fresh, m in zip(metrics, s.metrics):
        fresh.name = m.name
    total, count = None, 0
    with no_grad():
        for batch in dataset:
            x, y = to_tensors(batch, s.device)
            pred = s.model(x, training=False)
            batch_sum = s.loss(y, pred).data.to(torch.float64).sum()
            total = batch_sum if total is None else total + batch_sum
            count += x.shape[0]
            for m in metrics:
                m.update(y, pred)
    out = {"loss": float(total.item()) / count if count else float("nan")}
    for m in metrics:
        out[m.name] = m.result()
    return out
