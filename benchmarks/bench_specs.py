"""``trainctl bench --compare-torch`` on every example spec: our training step against the
same model in plain PyTorch (torch.nn + torch.autograd + torch.optim), per spec.

    python benchmarks/bench_specs.py [--iterations 50] [--warmup 5] [--threads 1] [specs/*.yaml]

For each spec, one ``trainctl.check.bench.bench_spec(..., compare_torch=True)`` run (ours
and torch's steps alternate in one loop, so a load spike hits both); prints a Markdown
table: batch, our step and torch's (median ms), the per-iteration ratio ours/torch (median
[quartiles]) and the ratio of the means, for the training step and for forward + loss.
The figures in docs/performance.md come from it. A benchmark, not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from trainctl.check.bench import bench_spec

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("specs", nargs="*", type=Path)
    p.add_argument("--iterations", "-n", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    specs = args.specs or sorted((ROOT / "specs").glob("*.yaml"))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.iterations} iterations "
          f"after {args.warmup} warm-up, load average before: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| spec | batch | step ms ours (median) | torch | step ratio: median [q1–q3]; "
          "of means | forward + loss ratio: median [q1–q3] |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for spec in specs:
        r = bench_spec(spec, iterations=args.iterations, warmup=args.warmup,
                       compare_torch=True)
        t = r.torch
        sq, fq = t["step_ratio_quartiles"], t["forward_ratio_quartiles"]
        print(f"| `{spec.name}` | {r.batch_size} | {r.step.median * 1e3:.3f} | "
              f"{t['step'].median * 1e3:.3f} | {sq[1]:.2f} [{sq[0]:.2f}–{sq[2]:.2f}]; "
              f"{t['step_ratio']:.2f} | {fq[1]:.2f} [{fq[0]:.2f}–{fq[2]:.2f}] |", flush=True)
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
