"""Wall time of ``trainctl validate`` as a fresh process, against the floors it stands on.

Each case is a new ``python`` process (what a user or an editor hook pays), run
``--repeat`` times; the table gives the best and the median wall time, and the best CPU
time (user + system of the child: less sensitive to other jobs on a shared machine). Byte
code is cached (in a temporary ``PYTHONPYCACHEPREFIX``, even when the environment sets
``PYTHONDONTWRITEBYTECODE``), as it is for an installed package. The reference rows are what
any Python tool pays before doing anything (``python -c pass``), what the spec package, the
CLI framework, numpy and the data package (numpy deferred) cost to import, and the import of
scikit-learn and of torch, so the validate rows can be read as ratios against them in the
same run; the last row validates every example spec in one process (divide by their number
for the cost per spec)::

    python benchmarks/bench_validate.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))

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
        ("import trainctl.cli.app (typer; command modules load on use)",
         [py, "-c", "import trainctl.cli.app"]),
        ("import numpy", [py, "-c", "import numpy"]),
        ("import trainctl.data.pipeline (numpy on first use)",
         [py, "-c", "import trainctl.data.pipeline"]),
        ("import sklearn.datasets", [py, "-c", "import sklearn.datasets"]),
        ("import torch", [py, "-c", "import torch"]),
        ("validate: spec with a top-level error (data not read)", [*validate, str(bad)]),
        ("validate specs/iris_mlp.yaml (scikit-learn set, described)",
         [*validate, str(ROOT / "specs" / "iris_mlp.yaml")]),
        ("validate specs/digits_mlp.yaml", [*validate, str(ROOT / "specs" / "digits_mlp.yaml")]),
        ("validate specs/charlm_transformer.yaml (text read, no numpy)",
         [*validate, str(ROOT / "specs" / "charlm_transformer.yaml")]),
        ("validate specs/iris_csv.yaml (CSV source, train steps: numpy)",
         [*validate, str(ROOT / "specs" / "iris_csv.yaml")]),
        (f"validate specs/*.yaml ({len(SPECS)} specs in one call)", [*validate, *map(str, SPECS)]),
    ]


def time_once(cmd: list[str], pycache: str) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one run of ``cmd``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": pycache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows, pycache = cases(Path(tmp)), str(Path(tmp) / "pycache")
        for _, cmd in rows:  # warm the file cache, write the byte code
            time_once(cmd, pycache)
        print(f"| case | best s | median s | best CPU s |  (repeat {args.repeat}, "
              f"load {os.getloadavg()[0]:.1f})")
        print("| --- | ---: | ---: | ---: |")
        for name, cmd in rows:
            runs = [time_once(cmd, pycache) for _ in range(args.repeat)]
            walls = [w for w, _ in runs]
            print(f"| {name} | {min(walls):.2f} | {statistics.median(walls):.2f} | "
                  f"{min(c for _, c in runs):.2f} |", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
