"""Checkpoint write and read time against the standard alternatives, in one run.

    python benchmarks/bench_checkpoint.py            # 1M and 10M float32 parameters
    python benchmarks/bench_checkpoint.py --quick    # 1M only, fewer repeats

State: P float32 parameters in 4 tensors plus Adam's two slots per parameter (3P floats).
Cases, median of ``--repeats`` after one warm-up, in one process and one directory:

- write: trainctl ``save_checkpoint`` (safetensors bytes, SHA-256 MANIFEST, fsync of every
  file and directory, atomic rename); ``torch.save`` of the same dicts followed by an
  fsync (durable, pickle-based); ``safetensors.torch.save_file`` of weights and slots
  (no fsync, no manifest: the floor);
- read: trainctl ``load_checkpoint`` (verifies every SHA-256, then loads on the CPU);
  ``torch.load(weights_only=True)``; ``safetensors.torch.load_file`` (no verification).

Prints a Markdown table (the figures in docs/performance.md come from it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainctl.io import load_checkpoint, save_checkpoint  # noqa: E402


def state(params: int):
    g = torch.Generator().manual_seed(0)
    sizes = [params // 2, params // 4, params // 8, params - params // 2 - params // 4 - params // 8]
    weights = {f"layer{i}/kernel": torch.randn(n, generator=g) for i, n in enumerate(sizes)}
    slots = {f"{k}/{s}": torch.randn(v.shape, generator=g) for k, v in weights.items()
             for s in ("m", "v")}
    meta = {"format": 1, "optimizer": "adam", "iterations": 10, "learning_rate": 1e-3,
            "steps": {k: 10 for k in weights}, "config": {"learning_rate": 1e-3}}
    return weights, slots, meta


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def torch_save_fsync(obj, file: Path) -> None:
    with open(file, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    repeats = args.repeats or (3 if args.quick else 5)
    root = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir="."))
    print("| parameters | MB | case | write s | read s |")
    print("| ---: | ---: | --- | ---: | ---: |")
    try:
        for params in sizes:
            weights, slots, meta = state(params)
            mb = 3 * params * 4 / 1e6
            ours = root / "ours"
            w = timed(lambda: save_checkpoint(ours, weights, (slots, meta), {"step": 10}), repeats)
            r = timed(lambda: load_checkpoint(ours), repeats)
            print(f"| {params:,} | {mb:.0f} | trainctl save_checkpoint / load_checkpoint | "
                  f"{w:.3f} | {r:.3f} |")
            pt = root / "state.pt"
            obj = {"model": weights, "optimizer": slots, "meta": meta}
            w = timed(lambda: torch_save_fsync(obj, pt), repeats)
            r = timed(lambda: torch.load(pt, weights_only=True), repeats)
            print(f"| {params:,} | {mb:.0f} | torch.save + fsync / torch.load(weights_only) | "
                  f"{w:.3f} | {r:.3f} |")
            st = root / "w.safetensors", root / "o.safetensors"

            def st_save():
                save_file(weights, str(st[0]))
                save_file(slots, str(st[1]))

            w = timed(st_save, repeats)
            r = timed(lambda: (load_file(str(st[0])), load_file(str(st[1]))), repeats)
            print(f"| {params:,} | {mb:.0f} | safetensors save_file / load_file (no fsync, no "
                  f"hash) | {w:.3f} | {r:.3f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
