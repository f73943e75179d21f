"""Data-parallel scaling on this machine: 1 process against 2 (gloo, loopback), trainctl
against plain PyTorch (torch.nn + DistributedDataParallel) in the same run.

    python benchmarks/bench_distributed.py            # 3 timed epochs after one warm-up
    python benchmarks/bench_distributed.py --epochs 2 --width 256

The model is an MLP 64 → width → width → 10 (ReLU) on 20,000 synthetic 64-feature
samples, per-replica batch 64, SGD with momentum, one torch thread per process (so 2
processes use the 2 cores a 1-process run leaves half idle). Ranks are forked from this
process (imports already done); each times its epochs (after a warm-up epoch) and rank 0
reports training samples per second over all ranks. The 1-minute load average before
and after is printed: the machine may be shared. Prints a Markdown table
(docs/distributed.md).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainctl.spec import load_spec  # noqa: E402
from trainctl.spec.distribute import World  # noqa: E402
from trainctl.train import Trainer, distributed, prepare  # noqa: E402

N, FEATURES, CLASSES, BATCH = 20000, 64, 10, 64
SPEC = """\
name: bench-dp
seed: 0
device: cpu
data:
  source: {{type: npz, path: {data}}}
  split: {{validation: 0.0, test: 0.0}}
  batch_size: {batch}
  shuffle: true
model:
  input_shape: [{features}]
  layers:
    - {{type: dense, units: {width}, activation: relu}}
    - {{type: dense, units: {width}, activation: relu}}
    - {{type: dense, units: {classes}}}
loss: {{type: sparse_categorical_crossentropy, from_logits: true}}
optimizer: {{type: sgd, learning_rate: 0.01, momentum: 0.9}}
train: {{epochs: {epochs}}}
distribute: {{backend: gloo, bucket_mb: {bucket_mb}}}
"""


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _trainctl(rank: int, world: int, spec: Path, out: Path) -> None:
    torch.set_num_threads(1)
    s = load_spec(spec)
    if world > 1:
        setup = prepare(s, "cpu", shard=(world, rank))
        distributed.start(World(rank, world, rank), "gloo", 120)
        trainer = distributed.DataParallelTrainer(setup)
    else:
        setup = prepare(s, "cpu")
        trainer = Trainer(setup)
    history = trainer.fit()
    seconds = sum(r["seconds"] for r in history[1:])
    if rank == 0:
        out.write_text(f"{N - N % world} {len(history) - 1} {seconds}")
    if world > 1:
        distributed.stop()


def _torch(rank: int, world: int, data: Path, epochs: int, width: int, out: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    arrays = np.load(data)
    x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, CLASSES))
    if world > 1:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    seconds = 0.0
    for epoch in range(epochs):
        start = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng([0, epoch]).permutation(N))
        mine = order[: N - N % world][rank::world]
        for i in range(0, len(mine), BATCH):
            idx = mine[i:i + BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch > 0:
            seconds += time.perf_counter() - start
    if rank == 0:
        out.write_text(f"{N - N % world} {epochs - 1} {seconds}")
    if world > 1:
        dist.destroy_process_group()


def _run(target, world: int, *args) -> float:
    """Samples per second over the timed epochs of ``world`` forked ranks."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=_port())
    out = Path(tempfile.mkstemp()[1])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=target, args=(r, world, *args, out)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0, f"a rank failed ({p.exitcode})"
    samples, epochs, seconds = out.read_text().split()
    out.unlink()
    return int(samples) * int(epochs) / float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after 1 warm-up)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--bucket-mb", type=float, default=25.0, help="distribute.bucket_mb")
    parser.add_argument("--only", choices=["trainctl", "torch"], help="one side only")
    args = parser.parse_args()
    epochs = args.epochs + 1
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    data = tmp / "data.npz"
    np.savez(data, x=rng.standard_normal((N, FEATURES), dtype=np.float32),
             y=rng.integers(0, CLASSES, N))
    spec = tmp / "spec.yaml"
    spec.write_text(SPEC.format(data=data, batch=BATCH, features=FEATURES, width=args.width,
                                classes=CLASSES, epochs=epochs,
                                bucket_mb=args.bucket_mb))
    load_before = os.getloadavg()[0]
    rows = {}
    for world in (1, 2):
        ours = _run(_trainctl, world, spec) if args.only != "torch" else float("nan")
        ref = (_run(_torch, world, data, epochs, args.width) if args.only != "trainctl"
               else float("nan"))
        rows[world] = (ours, ref)
    load_after = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores; 1-minute load average {load_before:.1f} before, "
          f"{load_after:.1f} after; MLP {FEATURES}-{args.width}-{args.width}-{CLASSES}, "
          f"batch {BATCH} per process, {args.epochs} timed epochs of {N} samples, "
          f"bucket_mb {args.bucket_mb:g}\n")
    print("| processes | trainctl samples/s | PyTorch (DDP) samples/s | trainctl / PyTorch |")
    print("| --- | --- | --- | --- |")
    for world, (ours, ref) in rows.items():
        print(f"| {world} | {ours:,.0f} | {ref:,.0f} | {ours / ref:.2f} |")
    print(f"\nspeed-up 1 → 2 processes: trainctl {rows[2][0] / rows[1][0]:.2f}x, "
          f"PyTorch {rows[2][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
