"""``trainctl predict`` stage by stage on the digits MLP (specs/digits_mlp.yaml, trained for three epochs
into a temporary run): reading a CSV of raw rows, the batched forward pass with
the stored preprocessing (``predict_rows``) against the same computation in plain PyTorch
(standardize, trainctl.check.torch_ref's translation of the model, softmax) in the same
process, and writing the predictions as CSV, JSONL and NPZ; numpy's loadtxt and savetxt
(probabilities only, ``%.17g``) give a baseline for the CSV stages in the same run.

    python benchmarks/bench_predict.py [--rows 20000] [--batch 256] [--reps 5]

Prints a Markdown table (docs/performance.md): milliseconds per stage (median over
``--reps``), rows/s, and the forward pass's ratio to plain PyTorch. A benchmark, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from trainctl.check.torch_ref import torch_model
from trainctl.cli.app import app
from trainctl.data.inputs import InputFormat, read_inputs
from trainctl.io.predictions import write_predictions
from trainctl.train.predict import predict_rows
from trainctl.train.trained import load_trained

ROOT = Path(__file__).resolve().parent.parent


def median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = ROOT / "specs" / "digits_mlp.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(tmp / "run"),
                                          "--epochs", "3", "--quiet"])
        assert result.exit_code == 0, result.output
        trained = load_trained(spec, tmp / "run")
        x = np.random.default_rng(0).integers(0, 17, size=(args.rows, 64)).astype(np.float32)
        source = tmp / "rows.csv"
        np.savetxt(source, x, fmt="%d", delimiter=",", header=",".join(f"f{i}" for i in range(64)),
                   comments="")
        rows = read_inputs(source, InputFormat())
        reference = torch_model(trained.model).module.eval()
        (stats,) = trained.preprocessing.steps
        mean, std = torch.as_tensor(stats.mean), torch.as_tensor(stats.std)

        def plain():
            with torch.no_grad():
                for i in range(0, args.rows, args.batch):
                    batch = (torch.from_numpy(rows.x[i:i + args.batch]) - mean) / std
                    torch.softmax(reference(batch).double(), dim=-1)

        preds = predict_rows(trained, rows, args.batch, 3)
        stages = {
            "read CSV": median_ms(lambda: read_inputs(source, InputFormat()), args.reps),
            "read CSV (np.loadtxt)": median_ms(lambda: np.loadtxt(source, delimiter=",", skiprows=1,
                                                                   dtype=np.float32), args.reps),
            "forward (predict_rows)": median_ms(lambda: predict_rows(trained, rows, args.batch, 3), args.reps),
            "forward (plain PyTorch)": median_ms(plain, args.reps),
            **{f"write {s}": median_ms(lambda s=s: write_predictions(tmp / f"p.{s}", preds), args.reps)
               for s in ("csv", "jsonl", "npz")},
            "write csv (np.savetxt %.17g, probabilities only)": median_ms(
                lambda: np.savetxt(tmp / "plain.csv", preds.probabilities, fmt="%.17g", delimiter=","),
                args.reps),
        }
    print(f"digits_mlp, {args.rows} rows, batch {args.batch}, 1 thread, median of {args.reps}\n")
    print("| stage | ms | rows/s |\n| --- | ---: | ---: |")
    for name, ms in stages.items():
        print(f"| {name} | {ms:.1f} | {args.rows / ms * 1e3:,.0f} |")
    ratio = stages["forward (predict_rows)"] / stages["forward (plain PyTorch)"]
    print(f"\nforward pass, trainctl / plain PyTorch: {ratio:.2f}")


if __name__ == "__main__":
    main()
