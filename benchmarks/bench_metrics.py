"""Cost of the streaming metrics and of a run's records, against the standard alternatives.

    python benchmarks/bench_metrics.py [--n 100000] [--classes 10] [--batch 256] [--reps 5]

- metrics: the seconds to stream ``--n`` samples of ``--classes`` logits through each
  metric in batches of ``--batch`` and read the result, against scikit-learn's function
  on the whole arrays at once (``f1_score``, ``roc_auc_score`` ovr, ``r2_score``): the
  price of streaming on the device;
- records: microseconds to append one epoch record to metrics.jsonl (the fsync'd write the
  run always did), and what metrics.csv and the TensorBoard event files add to it (the
  record writers alone, which flush the event file but do not fsync).

Medians over ``--reps``. It prints a Markdown table (docs/performance.md); it asserts
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm

from trainctl.io import RunDir
from trainctl.nn.metrics import metrics


def _stream(name: str, options: dict, y, p, batch: int, from_logits: bool = True) -> float:
    cls = metrics.get(name)
    m = cls(cls.Config(**options), from_logits=from_logits, output_shape=tuple(p.shape[1:]))
    start = time.perf_counter()
    for i in range(0, len(y), batch):
        m.update(y[i:i + batch], p[i:i + batch])
    m.results()
    return time.perf_counter() - start


def _median(fn, reps: int) -> float:
    return statistics.median(fn() for _ in range(reps))


def bench_metrics(n: int, classes: int, batch: int, reps: int) -> list[tuple[str, float, float]]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, classes, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    probs = torch.softmax(logits.double(), 1).numpy()
    pred = logits.argmax(1).numpy()
    target = torch.randn(n, 1, generator=gen)
    guess = target + 0.1 * torch.randn(n, 1, generator=gen)

    def sk(fn):
        def run():
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start
        return run

    return [
        ("f1 macro", _median(lambda: _stream("f1", {"average": "macro"}, labels, logits, batch), reps),
         _median(sk(lambda: skm.f1_score(labels, pred, average="macro")), reps)),
        ("auc (ovr macro)", _median(lambda: _stream("auc", {}, labels, logits, batch), reps),
         _median(sk(lambda: skm.roc_auc_score(labels, probs, multi_class="ovr")), reps)),
        ("r2", _median(lambda: _stream("r2", {}, target, guess, batch, False), reps),
         _median(sk(lambda: skm.r2_score(target.numpy(), guess.numpy())), reps)),
    ]


def bench_records(reps: int, records: int = 200) -> tuple[float, float]:
    """(µs per epoch record appended to metrics.jsonl with its fsync, µs per record added to
    metrics.csv and the TensorBoard event files by the record writers alone)."""
    record = {"kind": "epoch", "epoch": 1, "step": 10, "loss": 0.5, "accuracy": 0.75,
              "val_loss": 0.6, "val_accuracy": 0.7, "learning_rate": 0.01, "seconds": 1.0}

    def run(writers_only: bool) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            rd = RunDir(Path(tmp) / "r").create("name: x\n")
            rd.append_metrics(record)  # the first write imports tensorboard: not timed
            write = rd.records.write if writers_only else rd.append_metrics
            if not writers_only:
                rd.records.write = lambda r: None  # metrics.jsonl alone
            start = time.perf_counter()
            for i in range(records):
                write({**record, "epoch": i + 2, "step": 10 * (i + 2)})
            elapsed = time.perf_counter() - start
            rd.close()
        return elapsed / records * 1e6

    return _median(lambda: run(False), reps), _median(lambda: run(True), reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{args.n} samples, {args.classes} classes, batches of {args.batch}, "
          f"torch {torch.__version__}, 1 thread\n")
    print("| metric | streamed (ours), s | scikit-learn at once, s | ratio |")
    print("| --- | --- | --- | --- |")
    for name, ours, theirs in bench_metrics(args.n, args.classes, args.batch, args.reps):
        print(f"| {name} | {ours:.4f} | {theirs:.4f} | {ours / theirs:.2f} |")
    plain, full = bench_records(args.reps)
    print("\n| append one epoch record | µs |")
    print("| --- | --- |")
    print(f"| metrics.jsonl (write + fsync) | {plain:.0f} |")
    print(f"| metrics.csv + TensorBoard (the record writers alone) | {full:.0f} |")


if __name__ == "__main__":
    np.random.seed(0)
    main()
