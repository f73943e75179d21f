"""Eager training step against plain PyTorch, paired: the ratio per repetition.

    python benchmarks/eager_step.py [--models ab] [--reps 301] [--inner 3] [--threads 1]

The models, the trainctl eager step and the PyTorch step (torch.nn + torch.autograd +
torch.optim.Adam) are those of ``benchmarks/graph_mode.py``. Each repetition times
``--inner`` steps of each back to back (which goes first alternates), so both see the same
machine load; it prints the median step times and the median and quartiles of the
per-repetition ratios eager / PyTorch (lower is faster). On a shared, busy machine these
paired ratios are steadier than ratios of separately timed rounds. A benchmark, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import graph_mode  # noqa: E402  (the models and both steps)


def paired(a, b, reps: int, inner: int) -> tuple[list[float], list[float]]:
    """Seconds per call of ``a`` and ``b`` in each repetition, timed back to back."""
    ta, tb = [], []
    for r in range(reps):
        t = {}
        for name, fn in ((("a", a), ("b", b)) if r % 2 else (("b", b), ("a", a))):
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            t[name] = (time.perf_counter() - start) / inner
        ta.append(t["a"])
        tb.append(t["b"])
    return ta, tb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="ab")
    p.add_argument("--reps", type=int, default=301)
    p.add_argument("--inner", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            eager, _, _ = graph_mode.trainctl_step(key, "eager", Path(tmp))
            ref, _ = graph_mode.pytorch_step(key)
            for _ in range(5):
                eager(), ref()  # warm-up
            reps = max(11, args.reps // (10 if key in "cd" else 1))
            te, tp = paired(eager, ref, reps, args.inner)
            ratios = [e / r for e, r in zip(te, tp)]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print(f"({key}) {graph_mode.MODELS[key][0]}: eager "
                  f"{1e3 * statistics.median(te):.3f} ms, pytorch "
                  f"{1e3 * statistics.median(tp):.3f} ms; eager/pytorch median "
                  f"{statistics.median(ratios):.2f} [quartiles {q1:.2f}-{q3:.2f}] of {reps}; "
                  f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
