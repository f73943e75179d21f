"""Optimizer step time against torch.optim, in one run.

    python benchmarks/bench_optim.py            # 1M float32 parameters in 8 tensors
    python benchmarks/bench_optim.py --quick    # fewer repeats
    python benchmarks/bench_optim.py --device cuda
    python benchmarks/bench_optim.py --threads 2  # torch CPU threads (default 1)

For each optimizer, one ``step`` of trainctl's (gradients given) against the same
torch.optim optimizer's (gradients in ``.grad``, torch's default implementation for the
device), timed alternately in the same loop; then the shared options against their plain
PyTorch equivalents: ``global_clipnorm`` (torch.nn.utils.clip_grad_norm_ + step),
``use_ema`` (step + AveragedModel.update_parameters with get_ema_multi_avg_fn) and
``gradient_accumulation_steps`` 4 (4 gradients summed into ``.grad`` + a step, against 4
``step`` calls). Lion has no torch.optim counterpart: it is shown against AdamW.
Median of ``--repeats`` rounds after a warm-up. Prints a Markdown table (the figures in
docs/performance.md come from it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainctl.autodiff import Variable  # noqa: E402
from trainctl.optim import build_optimizer  # noqa: E402

SIZES = [(512, 1024), (1024,), (1024, 256), (256,), (256, 256), (256,), (256, 1536), (1536,)]

CASES = [  # (label, ours: name and options, torch: class, options, extra)
    ("sgd momentum 0.9", ("sgd", {"momentum": 0.9}), (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9})),
    ("adam", ("adam", {}), (torch.optim.Adam, {})),
    ("adamw", ("adamw", {}), (torch.optim.AdamW, {})),
    ("rmsprop centered momentum", ("rmsprop", {"centered": True, "momentum": 0.9}),
     (torch.optim.RMSprop, {"centered": True, "momentum": 0.9})),
    ("adagrad", ("adagrad", {}), (torch.optim.Adagrad, {})),
    ("adadelta", ("adadelta", {}), (torch.optim.Adadelta, {})),
    ("lion (torch: AdamW)", ("lion", {}), (torch.optim.AdamW, {})),
    ("adam + global_clipnorm 1", ("adam", {"global_clipnorm": 1.0}), (torch.optim.Adam, {"clip": 1.0})),
    ("adam + use_ema", ("adam", {"use_ema": True}), (torch.optim.Adam, {"ema": 0.99})),
    ("adam, 4 accumulated gradients", ("adam", {"gradient_accumulation_steps": 4}),
     (torch.optim.Adam, {"accumulate": 4})),
]


def make_params(device, gen):
    return [torch.randn(s, generator=gen).to(device) * 0.1 for s in SIZES]


class Ours:
    def __init__(self, init, grads, name, options):
        self.vars = [Variable(w, name=f"layer{i}/w", device=w.device) for i, w in enumerate(init)]
        self.opt = build_optimizer(name, self.vars, **options)
        self.grads = grads
        self.calls = options.get("gradient_accumulation_steps", 1)

    def step(self):
        for _ in range(self.calls):
            self.opt.step(self.grads, weight=32)


class Theirs:
    def __init__(self, init, grads, cls, options):
        options = dict(options)
        self.clip, self.ema = options.pop("clip", None), options.pop("ema", None)
        self.accumulate = options.pop("accumulate", 1)
        self.params = [torch.nn.Parameter(w.clone()) for w in init]
        self.opt = cls(self.params, **options)
        self.grads = grads
        if self.ema is not None:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.module = torch.nn.ParameterList(self.params)
            self.average = AveragedModel(self.module, multi_avg_fn=get_ema_multi_avg_fn(self.ema))

    def step(self):
        for p, g in zip(self.params, self.grads):
            p.grad = g.clone() if self.accumulate > 1 else g
        for _ in range(self.accumulate - 1):
            for p, g in zip(self.params, self.grads):
                p.grad.add_(g)
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.opt.step()
        if self.ema is not None:
            self.average.update_parameters(self.module)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(ours, theirs, repeats, device):
    times = {"ours": [], "theirs": []}
    for r in range(repeats + 1):
        for key, obj in (("ours", ours), ("theirs", theirs)):
            sync(device)
            start = time.perf_counter()
            obj.step()
            sync(device)
            if r:  # the first round warms up (slots created, kernels loaded)
                times[key].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["theirs"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 10 if args.quick else args.repeats
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    init, grads = make_params(device, gen), make_params(device, gen)
    n = sum(w.numel() for w in init)
    print(f"{n:,} float32 parameters in {len(init)} tensors on {device}; torch {torch.__version__}; "
          f"{args.threads} thread(s); median of {repeats}\n")
    print("| optimizer | trainctl ms | torch ms | ratio |")
    print("| --- | ---: | ---: | ---: |")
    with torch.no_grad():
        for label, (name, options), (cls, torch_options) in CASES:
            ours = Ours(init, grads, name, options)
            theirs = Theirs(init, grads, cls, torch_options)
            a, b = measure(ours, theirs, repeats, device)
            print(f"| {label} | {a * 1e3:.2f} | {b * 1e3:.2f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
