"""Wall time of ``trainctl validate`` as a fresh process, against the floors it stands on.

Each case is a new ``python`` process (what a user or an editor hook pays), run
``--repeat`` times; the table gives the best and the median. The reference rows are what
any Python tool pays before doing anything (``python -c pass``), what the spec package and
the CLI framework cost to import, and the import of scikit-learn and of torch, so the
validate rows can be read as ratios against them in the same run::

    python benchmarks/bench_validate.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BAD_TOP_LEVEL = """\
name: x
data: {source: {type: digits}}
model: {input_shape: [64], layers: [{type: dense, unist: 10}]}
optimizer: adam
"""


def cases(tmp: Path) -> list[tuple[str, list[str]]]:
    bad = tmp / "bad.yaml"
    bad.write_text(BAD_TOP_LEVEL)  # a top-level error: the data are not read
    py = sys.executable
    validate = [py, "-m", "trainctl", "validate"]
    return [
        ("python -c pass", [py, "-c", "pass"]),
        ("import trainctl.spec (pydantic, yaml)", [py, "-c", "import trainctl.spec"]),
        ("import trainctl.cli.app (typer, rich, every command module)",
         [py, "-c", "import trainctl.cli.app"]),
        ("import sklearn.datasets", [py, "-c", "import sklearn.datasets"]),
        ("import torch", [py, "-c", "import torch"]),
        ("validate: spec with a top-level error (data not read)", [*validate, str(bad)]),
        ("validate specs/iris_mlp.yaml (reads the data: scikit-learn)",
         [*validate, str(ROOT / "specs" / "iris_mlp.yaml")]),
        ("validate specs/digits_mlp.yaml", [*validate, str(ROOT / "specs" / "digits_mlp.yaml")]),
        ("validate specs/iris_csv.yaml (CSV source)",
         [*validate, str(ROOT / "specs" / "iris_csv.yaml")]),
    ]


def time_once(cmd: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = cases(Path(tmp))
        for _, cmd in rows:  # warm the file cache
            time_once(cmd)
        print(f"| case | best s | median s |  (repeat {args.repeat}, load {os.getloadavg()[0]:.1f})")
        print("| --- | ---: | ---: |")
        for name, cmd in rows:
            times = [time_once(cmd) for _ in range(args.repeat)]
            print(f"| {name} | {min(times):.2f} | {statistics.median(times):.2f} |", flush=True)


if __name__ == "__main__":
    main()
