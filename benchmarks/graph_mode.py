"""Graph mode against eager mode and plain PyTorch: seconds per training step.

Reference models (all Adam, float32, batch as given, 2 CPU threads unless --threads):
(a) MLP 64-128-10 b64, (b) MLP 784-512-512-10 b256, (c) CNN 1x28x28
conv3x3(32)-relu-maxpool-conv3x3(64)-relu-maxpool-dense128-dense10 b128, (d) MLP
2048-4096-4096-10 b512. For each: trainctl eager, trainctl graph (``execution: graph``:
the traced step) and the same model in plain PyTorch (torch.nn + torch.autograd +
torch.optim.Adam, its default CPU implementation), timed alternately in rounds in one
process; with --compile also torch.compile of the PyTorch step (model, loss, backward and
the Adam update in one compiled function) and trainctl graph with ``graph: {compiler:
inductor}`` (its fused elementwise nodes compiled by torch.compile). Reports the median seconds per step, the
ratios to PyTorch eager, the trace time of graph mode, the matmul FLOP rate of the graph
step against a bare torch.mm peak measured in the same run, and the load average.

    python benchmarks/graph_mode.py [--models abcd] [--rounds 5] [--steps 10] [--compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

MODELS = {
    "a": ("MLP 64-128-10 b64", [64], 64, [{"type": "dense", "units": 128, "activation": "relu"},
                                           {"type": "dense", "units": 10}]),
    "b": ("MLP 784-512-512-10 b256", [784], 256,
          [{"type": "dense", "units": 512, "activation": "relu"},
           {"type": "dense", "units": 512, "activation": "relu"}, {"type": "dense", "units": 10}]),
    "c": ("CNN 1x28x28 b128", [1, 28, 28], 128,
          [{"type": "conv2d", "filters": 32, "kernel_size": 3, "activation": "relu"},
           {"type": "max_pooling2d", "pool_size": 2},
           {"type": "conv2d", "filters": 64, "kernel_size": 3, "activation": "relu"},
           {"type": "max_pooling2d", "pool_size": 2}, {"type": "flatten"},
           {"type": "dense", "units": 128, "activation": "relu"}, {"type": "dense", "units": 10}]),
    "d": ("MLP 2048-4096-4096-10 b512", [2048], 512,
          [{"type": "dense", "units": 4096, "activation": "relu"},
           {"type": "dense", "units": 4096, "activation": "relu"}, {"type": "dense", "units": 10}]),
}


def torch_model(key: str) -> nn.Module:
    if key == "c":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128),
                             nn.ReLU(), nn.Linear(128, 10))
    widths = {"a": [64, 128, 10], "b": [784, 512, 512, 10], "d": [2048, 4096, 4096, 10]}[key]
    layers: list[nn.Module] = []
    for i, (n, m) in enumerate(zip(widths, widths[1:])):
        layers += [nn.Linear(n, m)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


def setup_for(key: str, execution: str, folder: Path, compiler: str | None = None):
    import yaml

    from trainctl.spec import load_spec
    from trainctl.train import prepare

    _, shape, batch, layers = MODELS[key]
    rng = np.random.default_rng(0)
    n = batch * 4
    np.savez(folder / f"{key}.npz", x=rng.standard_normal((n, *shape), dtype=np.float32),
             y=rng.integers(0, 10, n))
    spec = {"name": f"bench-{key}", "device": "cpu", "execution": execution,
            "data": {"source": {"type": "npz", "path": str(folder / f"{key}.npz")},
                     "split": {"validation": 0.0, "test": 0.0}, "batch_size": batch},
            "model": {"input_shape": shape, "layers": layers},
            "loss": {"type": "sparse_categorical_crossentropy", "from_logits": True},
            "optimizer": {"type": "adam", "learning_rate": 1e-4}}
    if compiler is not None:
        spec["graph"] = {"compiler": compiler}
    path = folder / f"{key}-{execution}{'-' + compiler if compiler else ''}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return prepare(load_spec(path))


def trainctl_step(key: str, execution: str, folder: Path, compiler: str | None = None):
    from trainctl.train import Trainer
    from trainctl.train.loop import to_tensors

    setup = setup_for(key, execution, folder, compiler)
    trainer = Trainer(setup)
    trainer.guard = None
    x, y = to_tensors(next(iter(setup.splits.train)), setup.device)
    start = time.perf_counter()
    trainer.train_step(x, y)  # graph mode: the trace
    if compiler is not None:
        trainer.train_step(x, y)  # the fused nodes are compiled at their first run
    first = time.perf_counter() - start
    return (lambda: trainer.train_step(x, y)), first, setup


def pytorch_step(key: str, compiled: bool = False):
    _, shape, batch, _ = MODELS[key]
    model = torch_model(key)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if not compiled:
        return step, 0.0
    fn = torch.compile(step)
    start = time.perf_counter()
    fn()
    fn()
    return fn, time.perf_counter() - start


def per_step(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def mm_peak(n: int = 1024, repeat: int = 5) -> float:
    """FLOP/s of a bare float32 torch.mm of n x n (best of ``repeat``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(per_step(lambda: torch.mm(a, b), 3) for _ in range(repeat))
    return 2 * n ** 3 / best


def matmul_flops(key: str) -> float:
    """Matmul FLOPs of one training step (forward + both backward GEMMs) of the MLPs."""
    widths = {"a": [64, 128, 10], "b": [784, 512, 512, 10], "d": [2048, 4096, 4096, 10]}.get(key)
    if widths is None:
        return float("nan")
    batch = MODELS[key][2]
    return sum(3 * 2 * batch * n * m for n, m in zip(widths, widths[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="abcd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models:
            steps = max(2, args.steps // (8 if key == "d" else 1))
            eager, _, _ = trainctl_step(key, "eager", Path(tmp))
            graph, trace_s, gsetup = trainctl_step(key, "graph", Path(tmp))
            ref, _ = pytorch_step(key)
            cases = {"pytorch": ref, "eager": eager, "graph": graph}
            compile_s = inductor_s = None
            compiled_nodes = 0
            if args.compile:
                cases["graph+inductor"], inductor_s, isetup = trainctl_step(key, "graph",
                                                                            Path(tmp), "inductor")
                compiled_nodes = sum(n.op == "fused_elementwise" for c in
                                     isetup.graph.train.concrete.values() for n in c.optimized)
                try:
                    cases["torch.compile"], compile_s = pytorch_step(key, compiled=True)
                except Exception as exc:  # no compiler toolchain on this machine
                    print(f"  torch.compile failed: {type(exc).__name__}: {str(exc)[:120]}")
            for fn in cases.values():
                fn()  # warm-up
            times: dict[str, list[float]] = {k: [] for k in cases}
            for _ in range(args.rounds):
                for name, fn in cases.items():
                    times[name].append(per_step(fn, steps))
            med = {k: statistics.median(v) for k, v in times.items()}
            peak = mm_peak()
            mfu = matmul_flops(key) / med["graph"] / peak
            print(f"({key}) {MODELS[key][0]}: " + ", ".join(
                f"{k} {1e3 * v:.2f} ms ({v / med['pytorch']:.2f})" for k, v in med.items())
                + f"; graph trace {trace_s:.2f} s"
                + (f"; torch.compile compile {compile_s:.1f} s" if compile_s else "")
                + (f"; graph+inductor trace and compile {inductor_s:.1f} s "
                   f"({compiled_nodes} fused nodes compiled)" if inductor_s else "")
                + f"; graph matmul FLOP/s {mfu:.2f} of mm peak {peak / 1e9:.0f} GFLOP/s"
                + f"; load {os.getloadavg()[0]:.1f}")
            del gsetup


if __name__ == "__main__":
    main()
