"""One Adam update of the parameters of the graph-mode reference models, three ways, timed
alternately in one process: torch.optim.Adam's default CPU update (a loop over tensors,
``foreach=False``), the eight ``torch._foreach_*`` calls graph mode used before, and
trainctl's :func:`trainctl.optim.adam.adam_fused_step` (``torch._fused_adam_``, one call).

    python benchmarks/fused_adam.py [--models abd] [--rounds 5] [--steps 20] [--threads 2]

Prints microseconds per update (median of the rounds) and the ratio to torch.optim.Adam.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from trainctl.autodiff import Variable
from trainctl.optim import build_optimizer
from trainctl.optim.adam import adam_fused_step

LAYERS = {"a": [64, 128, 10], "b": [784, 512, 512, 10], "d": [2048, 4096, 4096, 10]}


def shapes(key: str) -> list[tuple[int, ...]]:
    sizes = LAYERS[key]
    out: list[tuple[int, ...]] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        out += [(n_in, n_out), (n_out,)]
    return out


def updates(key: str):
    """{name: one update} over fresh parameters and fixed random gradients."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(s, generator=gen) for s in shapes(key)]

    theirs = [torch.zeros(s) for s in shapes(key)]
    ref = torch.optim.Adam(theirs, lr=1e-4, foreach=False)
    for t, g in zip(theirs, grads):
        t.grad = g

    ps = [torch.zeros(s) for s in shapes(key)]
    ms, vs = [torch.zeros_like(p) for p in ps], [torch.zeros_like(p) for p in ps]
    step = [0]

    def foreach():  # the eight calls of graph mode's former adam_foreach node
        step[0] += 1
        t, n = step[0], len(ps)
        torch._foreach_lerp_(ms, grads, 0.1)
        torch._foreach_mul_(vs, 0.999)
        torch._foreach_addcmul_(vs, grads, grads, 0.001)
        denom = torch._foreach_sqrt(vs)
        torch._foreach_div_(denom, [(1 - 0.999 ** t) ** 0.5] * n)
        torch._foreach_add_(denom, 1e-8)
        torch._foreach_addcdiv_(ps, ms, denom, [-1e-4 / (1 - 0.9 ** t)] * n)

    ours = [Variable(torch.zeros(s), name=f"p{i}") for i, s in enumerate(shapes(key))]
    opt = build_optimizer("adam", ours, learning_rate=1e-4)
    return {"torch.optim.Adam": ref.step, "foreach x8": foreach,
            "adam_fused_step": lambda: adam_fused_step(opt, grads)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="abd")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    for key in a.models:
        fns = updates(key)
        times: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():
            fn()  # warm-up: slots created
        for _ in range(a.rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                for _ in range(a.steps):
                    fn()
                times[name].append((time.perf_counter() - start) / a.steps * 1e6)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["torch.optim.Adam"]
        print(f"({key}) {sum(torch.Size(s).numel() for s in shapes(key)):,} parameters: "
              + ", ".join(f"{k} {v:,.0f} us ({v / base:.2f})" for k, v in med.items())
              + f"; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
