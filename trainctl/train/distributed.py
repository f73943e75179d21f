"""Data-parallel training on torch.distributed (the spec's ``distribute:`` section).

One process per replica; each holds the whole model. :func:`start` joins the process
group from the launcher's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``: torchrun's, or ``trainctl train --nproc N``'s) with
``distribute.timeout_s`` as the collective timeout. :class:`DataParallelTrainer` then

- starts from rank 0's weights (:func:`broadcast_variables`),
- trains on its shard of each epoch (``prepare(..., shard=(world, rank))``: the same
  seeded order everywhere, every ``world``-th element, trainctl.data.splits.replica_shard),
- averages the gradients over the ranks in buckets of ``distribute.bucket_mb``
  (:class:`GradientBuckets`), each bucket's all-reduce starting asynchronously during the
  reverse pass as soon as its last gradient is final (GradientTape.gradient's ``ready``),
- ends each epoch with the loss and metrics summed over the ranks, rank 0's non-trainable
  variables (batch normalization's moving statistics) copied to every rank, and rank 0's
  record (validation included) on every rank, so callbacks decide the same everywhere.

Only rank 0 has a run directory (checkpoints, metrics) and prints; docs/distributed.md.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from trainctl.autodiff.tensor import Tensor
from trainctl.spec.distribute import DistributedError, World
from trainctl.train.loop import Trainer


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` → ``nccl`` for a CUDA device, else ``gloo``; DistributedError for nccl
    without CUDA."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise DistributedError(f"distribute.backend nccl needs a CUDA device, the run uses "
                               f"{device}; use gloo (or auto)")
    return backend


def start(world: World, backend: str, timeout_s: float) -> None:
    """Join the default process group (env:// rendezvous at MASTER_ADDR:MASTER_PORT).
    Raises DistributedError when the address is missing or the rendezvous fails."""
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise DistributedError(f"{' and '.join(missing)} not set: launch with trainctl train "
                               f"--nproc N or torchrun")
    try:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size,
                                timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        raise DistributedError(f"rank {world.rank}: cannot join the process group at "
                               f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}: "
                               f"{first_line(exc)}") from None


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, without gloo's source location and advice."""
    text = str(exc).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0]) if text else type(exc).__name__
    return line.split(" This is typically caused")[0]


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a failed or timed-out collective (a lost peer)."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("Gloo", "gloo", "NCCL", "Connection", "connection", "Timed out",
                            "timed out", "Socket", "peer"))


def broadcast_variables(variables) -> None:
    """Copy rank 0's values of ``variables`` (Variables) to every rank, in place."""
    for v in variables:
        dist.broadcast(v.data, src=0)


class GradientBuckets:
    """Averages gradients over the ranks in flat buckets of about ``bucket_bytes``.

    Parameters are assigned to buckets in reverse order (the reverse pass finishes the
    last layers first), one dtype and device per bucket. :meth:`ready` copies a final
    gradient into its bucket and launches the bucket's asynchronous all-reduce once all
    its gradients are in; :meth:`finish` adds those never reported, waits, and returns
    the averaged gradients (None where this rank's gradient was None: a parameter no
    rank's loss uses). Every rank issues the all-reduces in the same order because the
    reverse pass visits the same graph.
    """

    def __init__(self, params: list, bucket_bytes: int, world_size: int):
        self.world_size = world_size
        self.shapes = [tuple(p.shape) for p in params]
        self.slot: list[tuple[int, int, int]] = [None] * len(params)  # (bucket, start, size)
        self.buckets: list[dict[str, Any]] = []
        current = None
        for i in reversed(range(len(params))):
            p = params[i]
            n = p.data.numel()
            key = (p.data.dtype, p.data.device)
            if (current is None or current["key"] != key
                    or (current["size"] and (current["size"] + n) * p.data.element_size()
                        > bucket_bytes)):
                current = {"key": key, "size": 0, "members": []}
                self.buckets.append(current)
            self.slot[i] = (len(self.buckets) - 1, current["size"], n)
            current["members"].append(i)
            current["size"] += n

    def _begin(self) -> None:
        self.buffers = [torch.empty(b["size"], dtype=b["key"][0], device=b["key"][1])
                        for b in self.buckets]
        self.missing = [len(b["members"]) for b in self.buckets]
        self.works: list[Any] = [None] * len(self.buckets)
        self.reported = [False] * len(self.shapes)
        self.none = [False] * len(self.shapes)

    def ready(self, i: int, grad: Tensor | None) -> None:
        """The final gradient of parameter ``i`` (None: not connected)."""
        if self.reported[i]:
            return
        self.reported[i] = True
        b, start, n = self.slot[i]
        view = self.buffers[b][start:start + n]
        if grad is None:
            self.none[i] = True
            view.zero_()
        else:
            view.copy_(grad.data.reshape(-1))
        self.missing[b] -= 1
        if self.missing[b] == 0:
            self.works[b] = dist.all_reduce(self.buffers[b], async_op=True)

    def finish(self, grads: list) -> list:
        """The averaged gradients (``grads``: this rank's, for those not yet reported)."""
        for i in sorted(range(len(grads)), key=lambda i: self.slot[i][:2]):
            self.ready(i, grads[i])  # in bucket order: the same on every rank
        out: list = []
        for work in self.works:
            work.wait()
        for buf in self.buffers:
            buf.div_(self.world_size)
        for i, shape in enumerate(self.shapes):
            b, start, n = self.slot[i]
            out.append(None if self.none[i] else Tensor(self.buffers[b][start:start + n]
                                                        .view(shape)))
        return out

    def reduce(self, tape, loss: Tensor, params: list) -> list:
        """d(loss)/d(params) on this rank, averaged over the ranks, overlapping the
        all-reduces with the rest of the reverse pass."""
        self._begin()
        grads = tape.gradient(loss, params, ready=self.ready)
        return self.finish(list(grads))


SUMMED_STATES = ("count", "total", "matrix")  # metrics whose state adds up across ranks


def reduce_metric(metric, device: torch.device) -> None:
    """Replace ``metric``'s state by the sum over the ranks when its state is sums
    (count, total, confusion matrix: mean metrics, accuracy, precision, recall, F1...);
    other metrics (AUC, R²) keep this rank's state and their result is the mean of the
    ranks' results weighted by their sample counts (see docs/distributed.md)."""
    own = {k for k, v in vars(metric).items() if isinstance(v, torch.Tensor)}
    if own <= set(SUMMED_STATES) and hasattr(metric, "count"):
        for key in sorted(own | {"count"}):
            value = getattr(metric, key)
            if isinstance(value, torch.Tensor):
                t = value.clone()
            else:
                t = torch.tensor(float(value), dtype=torch.float64, device=device)
            dist.all_reduce(t)
            setattr(metric, key, t if isinstance(value, torch.Tensor) else int(round(t.item())))
        return
    metric._distributed_weight = True


def _agree_on(record: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """``record`` with rank 0's float values on every rank."""
    keys = sorted(k for k, v in record.items() if isinstance(v, float))
    values = torch.tensor([record[k] for k in keys], dtype=torch.float64, device=device)
    dist.broadcast(values, src=0)
    return {**record, **dict(zip(keys, values.tolist()))}


class DataParallelTrainer(Trainer):
    """A :class:`Trainer` that is one replica of a data-parallel job (module docstring).
    The setup must come from ``prepare(spec, device, shard=(world size, rank))``; only
    rank 0 should be given a run directory and a progress reporter."""

    def __init__(self, setup, run_dir=None, callbacks=(), bucket_mb: float = 25.0):
        super().__init__(setup, run_dir, callbacks)
        self.world_size = setup.world_size
        self.buckets = GradientBuckets(setup.model.trainable_variables,
                                       int(bucket_mb * 2**20), self.world_size)
        broadcast_variables(setup.model.variables)

    def gradients(self, tape, loss, params):
        return self.buckets.reduce(tape, loss, params)

    def _train_epoch(self, epoch: int):
        record = super()._train_epoch(epoch)
        if record is None:
            return None
        s = self.setup
        total, count = self._epoch_sums
        sums = torch.tensor([float(total.item()) if total is not None else 0.0, float(count)],
                            dtype=torch.float64, device=s.device)
        dist.all_reduce(sums)
        record["loss"] = float(sums[0] / sums[1]) if sums[1] > 0 else float("nan")
        for m in s.metrics:
            reduce_metric(m, s.device)
            results = m.results()
            if getattr(m, "_distributed_weight", False):  # count-weighted mean of the ranks'
                vals = torch.tensor([v * count for v in results.values()] + [float(count)],
                                    dtype=torch.float64, device=s.device)
                dist.all_reduce(vals)
                results = dict(zip(results, (vals[:-1] / vals[-1]).tolist()))
            record.update(results)
        broadcast_variables([v for v in s.model.variables if not v.trainable])
        return _agree_on(record, s.device)
