"""Helpers of the data-parallel tests: specs, and ranks run as forked processes (cheap:
they inherit the imported modules; arguments are not pickled) on gloo over loopback."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import time
import traceback
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

SPEC = """\
name: dp-proof
seed: 3
device: cpu
data:
  source: {{type: blobs, n_samples: 208, sigma: 0.7}}
  split: {{validation: 0.0, test: 0.0}}
  batch_size: {batch}
  shuffle: true
model:
  input_shape: [2]
  layers:
{layers}
loss: {{type: binary_crossentropy, from_logits: true}}
metrics: [accuracy]
optimizer: {optimizer}
train: {{steps: {steps}}}
distribute: {{backend: gloo, sync_batch_norm: {sync}, bucket_mb: 0.0001, timeout_s: {timeout}}}
"""
DENSE = "    - {type: dense, units: 16, activation: tanh}\n    - {type: dense, units: 1}"
WITH_BN = ("    - {type: dense, units: 16}\n    - {type: batch_normalization, momentum: 0.5}\n"
           "    - {type: activation, activation: tanh}\n    - {type: dense, units: 1}")


def write_spec(path: Path, *, batch: int, layers: str = DENSE, steps: int = 20,
               optimizer: str = "{type: sgd, learning_rate: 0.1, momentum: 0.9}",
               sync: bool = False, timeout: float = 20) -> Path:
    path.write_text(SPEC.format(batch=batch, layers=layers, optimizer=optimizer, steps=steps,
                                sync=str(sync).lower(), timeout=timeout))
    return path


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def train_single(spec: Path, history: list | None = None) -> dict[str, np.ndarray]:
    """Every variable after training ``spec`` in this process (its epoch records are
    appended to ``history`` if given)."""
    from trainctl.spec import load_spec
    from trainctl.train import Trainer, prepare

    setup = prepare(load_spec(spec))
    records = Trainer(setup).fit()
    if history is not None:
        history.extend(records)
    return {v.name: v.data.numpy().copy() for v in setup.model.variables}


def _rank(rank: int, world: int, spec: Path, out: Path, behaviour: str) -> None:
    import torch

    from trainctl.nn.layers.sync_batch_norm import convert_sync_batch_norm
    from trainctl.spec import load_spec
    from trainctl.spec.distribute import World
    from trainctl.train import distributed, prepare

    torch.set_num_threads(1)
    try:
        s = load_spec(spec)
        setup = prepare(s, "cpu", shard=(world, rank))
        if s.distribute.sync_batch_norm:
            convert_sync_batch_norm(setup.model.layers)
        distributed.start(World(rank, world, rank), "gloo", s.distribute.timeout_s)
        if behaviour == "hang" and rank == 1:
            time.sleep(120)  # joined, then never answers
        if behaviour == "die" and rank == 1:
            os._exit(9)
        start = time.monotonic()
        try:
            trainer = distributed.DataParallelTrainer(setup, bucket_mb=s.distribute.bucket_mb)
            history = trainer.fit()
        except RuntimeError as exc:
            (out / f"error-{rank}.txt").write_text(
                f"{time.monotonic() - start:.1f} {distributed.is_collective_failure(exc)} "
                f"{distributed.first_line(exc)}")
            os._exit(3)
        save_file({v.name: v.data.numpy().copy() for v in setup.model.variables},
                  str(out / f"rank{rank}.safetensors"))
        (out / f"record-{rank}.json").write_text(json.dumps(history[-1]) if history else "{}")
        distributed.stop()
        os._exit(0)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


def run_ranks(spec: Path, out: Path, world: int = 2, behaviour: str = "train",
              timeout: float = 90) -> list[int]:
    """Fork ``world`` ranks training ``spec``; their exit codes. ``behaviour``: ``train``,
    ``hang`` (rank 1 joins and never answers) or ``die`` (rank 1 exits at once)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=free_port())
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank, args=(r, world, spec, out, behaviour))
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for i, p in enumerate(procs):
        if behaviour == "hang" and i > 0:
            break  # the hung ranks are killed once rank 0 has given up
        p.join(max(0.1, deadline - time.monotonic()))
    codes = []
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        codes.append(p.exitcode)
    return codes


def load_rank(out: Path, rank: int) -> dict[str, np.ndarray]:
    return load_file(str(out / f"rank{rank}.safetensors"))


def max_rel(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """Largest ||a - b|| / ||b|| over the variables (names must match)."""
    assert a.keys() == b.keys()
    return max(float(np.linalg.norm(a[k].astype(np.float64) - b[k]) /
                     max(np.linalg.norm(b[k].astype(np.float64)), 1e-30)) for k in a)
