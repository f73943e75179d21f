"""Inference of each example spec's model: trainctl's forward pass, the same model in plain
PyTorch (trainctl.check.torch_ref's translation), and the ONNX export in onnxruntime;
plus how long ``to_onnx`` takes. Float32, CPU, random weights (speed does not depend on them).

    python benchmarks/bench_export.py [--batch 256] [--reps 21] [--threads 1]

Per spec: milliseconds per batch (median over ``--reps``; the three run back to back in
each repetition so they see the same machine load), the ratios trainctl / torch and
onnxruntime / torch (medians of the per-repetition ratios), and the export time. Prints a
Markdown table (docs/performance.md). A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnx  # noqa: F401  (imported here, so to_onnx times exclude the import)
import onnxruntime as ort
import torch

from trainctl.autodiff import no_grad
from trainctl.autodiff.tensor import Tensor
from trainctl.check.torch_ref import torch_model
from trainctl.export import to_onnx
from trainctl.export.walk import model_graph
from trainctl.graph import build_model
from trainctl.spec import load_spec

SPECS = ["digits_mlp", "digits_cnn", "digits_resnet", "wine_wide_deep"]
ROOT = Path(__file__).resolve().parent.parent


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def bench(stem: str, batch: int, reps: int, threads: int) -> dict:
    model = build_model(load_spec(ROOT / "specs" / f"{stem}.yaml"))
    reference = torch_model(model).module.eval()
    start = time.perf_counter()
    data = to_onnx(model).SerializeToString()
    export_ms = (time.perf_counter() - start) * 1e3
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    sess = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.normal(size=(batch, *i.shape)).astype(np.float32)
             for i in model_graph(model).inputs}
    ours_in = {k: Tensor(torch.from_numpy(v)) for k, v in feeds.items()}
    torch_in = {k: torch.from_numpy(v) for k, v in feeds.items()}
    if len(feeds) == 1:
        ours_in, torch_in = next(iter(ours_in.values())), next(iter(torch_in.values()))

    def ours():
        with no_grad():
            model(ours_in, training=False)

    def plain():
        with torch.inference_mode():
            reference(torch_in)

    def onnx():
        sess.run(None, feeds)

    for fn in (ours, plain, onnx):  # warm-up
        fn()
    rows = [(timed(ours), timed(plain), timed(onnx)) for _ in range(reps)]
    med = [statistics.median(r[k] for r in rows) for k in range(3)]
    return {"spec": stem, "ours": med[0], "torch": med[1], "onnx": med[2],
            "ours/torch": statistics.median(r[0] / r[1] for r in rows),
            "onnx/torch": statistics.median(r[2] / r[1] for r in rows), "export": export_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, {args.reps} reps, {args.threads} threads; torch "
          f"{torch.__version__}, onnxruntime {ort.__version__}\n")
    print("| spec | trainctl ms | torch ms | onnxruntime ms | trainctl / torch | "
          "onnxruntime / torch | to_onnx ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for stem in SPECS:
        r = bench(stem, args.batch, args.reps, args.threads)
        print(f"| {r['spec']} | {r['ours']:.2f} | {r['torch']:.2f} | {r['onnx']:.2f} | "
              f"{r['ours/torch']:.2f} | {r['onnx/torch']:.2f} | {r['export']:.1f} |")


if __name__ == "__main__":
    main()
