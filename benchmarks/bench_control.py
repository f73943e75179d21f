"""What the training control costs per step: the non-finite guard, a schedule, step records.

    python benchmarks/bench_control.py              # specs/digits_mlp.yaml, 5 rounds
    python benchmarks/bench_control.py --quick      # 2 rounds
    python benchmarks/bench_control.py --threads 2  # torch CPU threads (default 1)

Trains the digits spec (its schedule and callbacks removed, then added back one at a time)
for ``--epochs`` epochs per variant, the variants alternating in each round, and prints the
best (and median) time of a step (from one step's end to the next one's, so the epoch-end evaluation
and checkpoints are left out) and its ratio to the baseline (guard off, no schedule, no
step records): the guard's check is one host-device synchronisation and a finiteness test
of the loss and every gradient per step; ``rollback`` adds a copy of weights and optimizer
state every 100 steps; step records read the running loss and metrics (a synchronisation)
and append a line to metrics.jsonl (fsynced) with its CSV and TensorBoard copies. Prints a
Markdown table (the figures in docs/performance.md come from it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainctl.io import RunDir  # noqa: E402
from trainctl.spec import load_spec  # noqa: E402
from trainctl.train import Callback, Trainer, prepare  # noqa: E402

OFF = "callbacks=[{type: nonfinite_guard, policy: off}]"
VARIANTS = [  # (label, --set overrides, with a run directory)
    ("baseline: guard off, no schedule", [OFF], False),
    ("nonfinite_guard policy stop (the default)", [], False),
    ("nonfinite_guard policy rollback", ["callbacks=[{type: nonfinite_guard, policy: rollback}]"],
     False),
    ("guard + cosine schedule with warmup", ["schedule={type: cosine, warmup_steps: 50}"], False),
    ("guard off, run directory, epoch records only", [OFF], True),
    ("guard off, run directory, a step record every step", [OFF, "train.log_every_n_steps=1"],
     True),
    ("guard off, run directory, a step record every 50 steps",
     [OFF, "train.log_every_n_steps=50"], True),
]


class StepTimer(Callback):
    """Seconds from one step's end to the next one's within an epoch: a step's own cost
    (what runs between two batches included), not the epoch's evaluation or checkpoints."""

    def __init__(self):
        self.total, self.count, self.last = 0.0, 0, None

    def on_epoch_begin(self, epoch, steps):
        self.last = None

    def on_batch_end(self, step, batch_size, loss):
        now = time.perf_counter()
        if self.last is not None:
            self.total, self.count = self.total + now - self.last, self.count + 1
        self.last = now


def seconds_per_step(overrides: list[str], epochs: int, run_dir: bool) -> float:
    spec = load_spec(ROOT / "specs" / "digits_mlp.yaml",
                     ["schedule=null", "callbacks=[]", "checkpoint.every_epoch=false",
                      f"train.epochs={epochs}", *overrides])
    setup = prepare(spec, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rd = RunDir(Path(tmp) / "run").create(setup.resolved_yaml()) if run_dir else None
        timer = StepTimer()
        Trainer(setup, rd, [timer]).fit()
        if rd is not None and hasattr(rd, "close"):
            rd.close()
    return timer.total / timer.count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rounds = 2 if args.quick else 7
    seconds_per_step([OFF], 1, False)  # warm-up
    times: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    for _ in range(rounds):
        for label, overrides, run_dir in VARIANTS:
            times[label].append(seconds_per_step(overrides, args.epochs, run_dir))
    base = min(times[VARIANTS[0][0]])
    print(f"digits_mlp, {args.epochs} epochs of 20 steps, batch 64, CPU, {args.threads} "
          f"thread(s), best and median of {rounds} rounds\n")
    print("| variant | ms per step (best) | ratio to the baseline (best) | ms per step (median) |")
    print("| --- | --- | --- | --- |")
    for label, _, _ in VARIANTS:
        t = min(times[label])
        print(f"| {label} | {t * 1e3:.3f} | {t / base:.2f} | "
              f"{statistics.median(times[label]) * 1e3:.3f} |")


if __name__ == "__main__":
    main()
