"""Recording overhead per op of our tape against torch.autograd's, on the same small tensors.

    python benchmarks/bench_autodiff_overhead.py [--size 8] [--reps 1001] [--inner 5]

For each op (add, mul, matmul, relu, tanh on [size, size] float32 tensors) it times, in
microseconds per op:

- plain:   the forward with nothing recorded (ours under ``tc.no_grad()``, torch under
           ``torch.no_grad()``): the kernel and dispatch cost both pay;
- record:  the forward with inputs that are tracked (a trainable Variable / a tensor with
           ``requires_grad=True``); record - plain is the recording overhead;
- fwd+bwd: one op under a GradientTape plus ``tape.gradient`` with respect to both inputs,
           against ``y = op(a, b); torch.autograd.grad(y, (a, b), ones)``.

Every measurement is the median over ``--reps`` repetitions of ``--inner`` calls, ours and
torch's back to back (order alternating) within each repetition, so both see the same
machine load; the fwd+bwd ratio is the median (and quartiles) of the per-repetition ratios. It prints a
Markdown table (the figures in docs/performance.md come from it). This is a benchmark, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time

import torch

import trainctl as tc

OPS = {
    "add": (tc.ops.add, torch.add),
    "mul": (tc.ops.mul, torch.mul),
    "matmul": (tc.ops.matmul, torch.matmul),
    "relu": (lambda a, b: tc.ops.relu(a), lambda a, b: torch.relu(a)),
    "tanh": (lambda a, b: tc.ops.tanh(a), lambda a, b: torch.tanh(a)),
}


def _per_call_us(variant, inner: int) -> float:
    fn, context = variant
    with context():  # entered once per batch, so its cost is not charged to the op
        start = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        return (time.perf_counter_ns() - start) / inner / 1e3


def _variants(ours, theirs, size: int):
    gen = torch.Generator().manual_seed(0)
    a0, b0 = torch.randn(size, size, generator=gen), torch.randn(size, size, generator=gen)
    a, b = tc.Variable(a0), tc.Variable(b0)
    ta, tb = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    ones = torch.ones(size, size)

    def ours_forward():
        ours(a, b)

    def ours_fwd_bwd():
        with tc.GradientTape() as tape:
            y = ours(a, b)
        tape.gradient(y, [a, b], unconnected_gradients="zero")

    def torch_forward():
        theirs(ta, tb)

    def torch_fwd_bwd():
        y = theirs(ta, tb)
        torch.autograd.grad(y, (ta, tb), ones, allow_unused=True)

    none = contextlib.nullcontext
    return {("ours", "plain"): (ours_forward, tc.no_grad),
            ("torch", "plain"): (torch_forward, torch.no_grad),
            ("ours", "record"): (ours_forward, none), ("torch", "record"): (torch_forward, none),
            ("ours", "fwd+bwd"): (ours_fwd_bwd, none), ("torch", "fwd+bwd"): (torch_fwd_bwd, none)}


def measure(size: int, reps: int, inner: int) -> dict:
    results = {}
    for name, (ours, theirs) in OPS.items():
        variants = _variants(ours, theirs, size)
        for fn in variants.values():  # warm up
            _per_call_us(fn, inner)
        samples = {key: [] for key in variants}
        for rep in range(reps):
            keys = list(variants) if rep % 2 == 0 else list(reversed(variants))
            for key in keys:
                samples[key].append(_per_call_us(variants[key], inner))
        results[name] = {key: statistics.median(v) for key, v in samples.items()}
        ratios = [o / t for o, t in zip(samples[("ours", "fwd+bwd")], samples[("torch", "fwd+bwd")])]
        q1, q2, q3 = statistics.quantiles(ratios, n=4)
        results[name]["ratio"] = (q2, q1, q3)
    return results


def table(results: dict) -> str:
    lines = ["| op | plain ours / torch (µs) | recording overhead ours / torch (µs) | "
             "fwd+bwd ours / torch (µs) | fwd+bwd ratio ours/torch: median [quartiles] |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        over_o = r[("ours", "record")] - r[("ours", "plain")]
        over_t = r[("torch", "record")] - r[("torch", "plain")]
        fb_o, fb_t = r[("ours", "fwd+bwd")], r[("torch", "fwd+bwd")]
        q2, q1, q3 = r["ratio"]
        lines.append(f"| {name} | {r[('ours', 'plain')]:.1f} / {r[('torch', 'plain')]:.1f} | "
                     f"{over_o:.1f} / {over_t:.1f} | {fb_o:.1f} / {fb_t:.1f} | "
                     f"{q2:.2f}x [{q1:.2f}–{q3:.2f}] |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--reps", type=int, default=1001)
    parser.add_argument("--inner", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = measure(args.size, args.reps, args.inner)
    print(f"# [{args.size},{args.size}] float32, median of {args.reps} x {args.inner} calls, "
          f"torch {torch.__version__}, Python {platform.python_version()}, "
          f"{platform.machine()}, 1 torch thread")
    print(table(results))


if __name__ == "__main__":
    main()
