"""Train each spec for N steps on a device and on the CPU (same seed) and compare.

    python scripts/compare_devices.py --device cuda --steps 300 specs/*.yaml

Prints one line per spec and exits 1 when a difference is past the tolerances: the test
loss within 10 % (relative) and the test accuracy within 0.03 (absolute). The two runs
start from the same weights and batches but are not bit-identical (different kernels,
reduction orders and TF32-free float32 on both sides), and a few hundred steps of
training amplify rounding differences, so the tolerances bound the outcome, not the bits.
"""

from __future__ import annotations

import argparse
import sys
import time

LOSS_RTOL, ACC_ATOL = 0.10, 0.03


def run(spec: str, device: str, steps: int) -> tuple[dict, float]:
    from trainctl.spec import load_spec
    from trainctl.train import Trainer, evaluate, prepare

    s = load_spec(spec, [f"train.steps={steps}", "train.epochs=null", "callbacks=[]"])
    setup = prepare(s, device=device)
    start = time.perf_counter()
    Trainer(setup).fit()
    seconds = time.perf_counter() - start
    split = setup.splits.test if setup.splits.sizes.get("test", 0) else setup.splits.validation
    return evaluate(setup, split), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    failed = 0
    for spec in args.specs:
        try:
            ref, t_cpu = run(spec, "cpu", args.steps)
            got, t_dev = run(spec, args.device, args.steps)
        except Exception as exc:  # one spec's problem is its line, not the end of the check
            failed += 1
            print(f"FAIL {spec}: {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
            continue
        dl = abs(got["loss"] - ref["loss"]) / max(abs(ref["loss"]), 1e-12)
        da = abs(got.get("accuracy", 0.0) - ref.get("accuracy", 0.0))
        ok = dl <= LOSS_RTOL and da <= ACC_ATOL
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {spec}: loss cpu {ref['loss']:.4f} {args.device} "
              f"{got['loss']:.4f} (rel {dl:.3f} <= {LOSS_RTOL}); accuracy cpu "
              f"{ref.get('accuracy', float('nan')):.4f} {args.device} "
              f"{got.get('accuracy', float('nan')):.4f} (abs {da:.3f} <= {ACC_ATOL}); "
              f"{args.steps} steps {t_cpu:.1f}s cpu, {t_dev:.1f}s {args.device}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
