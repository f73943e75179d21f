"""Imports point one way down the data flow (docs/architecture.md), and the spec package
never imports torch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "trainctl"

# A package may import from packages of a lower or equal rank only.
RANK = {
    "errors": 0, "registry": 0,
    "spec": 1,
    "backend": 2,
    "autodiff": 3,
    "nn": 4, "optim": 4, "data": 4,
    "graph": 5, "io": 5, "compile": 5,
    "train": 6, "check": 6, "export": 6,
    "cli": 7,
}
SAME_RANK_FORBIDDEN = {("nn", "optim"), ("nn", "data"), ("optim", "nn"), ("optim", "data"),
                       ("data", "nn"), ("data", "optim"), ("graph", "io"), ("io", "graph"),
                       ("compile", "graph"), ("compile", "io"), ("graph", "compile"), ("io", "compile"),
                       ("train", "check"), ("train", "export"), ("export", "train"),
                       ("export", "check"), ("check", "export")}


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if len(rel.parts) == 1:
            continue  # trainctl/__init__.py, __main__.py, errors.py, registry.py
        yield rel.parts[0], path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_every_package_has_a_rank():
    packages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK), packages - set(RANK)


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v)[-40:])
def test_imports_point_down_the_data_flow(package, path):
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "trainctl" or len(parts) < 2:
            continue
        target = parts[1]
        assert RANK[target] <= RANK[package], f"{path.name}: {package} imports {name}"
        assert (package, target) not in SAME_RANK_FORBIDDEN, f"{path.name}: {package} imports {name}"


def test_spec_package_imports_no_torch():
    for path in (PKG / "spec").rglob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in ("torch", "numpy"), f"{path.name} imports {name}"


def test_importing_spec_does_not_load_torch():
    import subprocess
    import sys

    code = "import sys, trainctl.spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
