"""The elementwise fusion pass on its own: microseconds per call of small traced graphs
with and without ``fuse_elementwise`` (both then get buffer reuse and liveness, as in
graph mode), timed alternately in rounds in one process; with --inductor also the fused
graph with its fused nodes compiled by torch.compile (``graph: {compiler: inductor}``).

Cases: the relu, tanh and sigmoid rules' gradient chains (composite torch kernels) and an
elementwise chain ``tanh(exp(x) * y + 1) - x`` (one in-place fused node), on [256, 512]
float32 (the size of model (b)'s hidden layers), 2 threads.

    python benchmarks/graph_fusion.py [--rounds 7] [--calls 200] [--inductor]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.compile import compile_graph, function, run_passes

SHAPE = (256, 512)


def _grad(act):
    def f(x, g):
        with GradientTape() as tape:
            tape.watch(x)
            y = act(x)
        return tape.gradient(y, x, output_gradients=g)
    return f


CASES = {
    "relu rule": (_grad(ops.relu), 2),
    "tanh rule": (_grad(ops.tanh), 2),
    "sigmoid rule": (_grad(ops.sigmoid), 2),
    "chain tanh(exp(x)*y+1)-x": (lambda x, y: ops.tanh(ops.exp(x) * y + 1.0) - x, 2),
}


def runner(fn, n_inputs: int, passes):
    inputs = [torch.randn(*SHAPE) for _ in range(n_inputs)]
    graph = function(fn, passes=()).trace(*[tc.tensor(t) for t in inputs]).graph
    graph = run_passes(graph, passes)
    run = compile_graph(graph)[0]
    return (lambda: run(inputs)), graph


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inductor", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {list(SHAPE)} float32, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    tail = ("dce", "buffer_reuse", "liveness")
    for name, (fn, n) in CASES.items():
        cases = {"unfused": runner(fn, n, tail)[0]}
        fused, graph = runner(fn, n, ("fuse_elementwise", *tail))
        cases["fused"] = fused
        if args.inductor:
            cases["inductor"] = runner(fn, n, ("fuse_elementwise", "inductor", *tail))[0]
        ops_after = [m.op if m.op != "fused_elementwise" else repr(m.fn)
                     for m in graph.nodes if not m.leaf and m.op != "free"]
        for c in cases.values():
            c()
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for k, c in cases.items():
                times[k].append(per_call(c, args.calls))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: " + ", ".join(f"{k} {1e6 * v:.0f} us ({v / med['unfused']:.2f})"
                                      for k, v in med.items())
              + f"; fused graph: {', '.join(ops_after)}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
