"""Pictures of a model's DAG, from its torch-free :class:`GraphPlan`: Graphviz DOT and
Mermaid text (each edge labelled with the shape it carries, batch axis as ``N``), and SVG/PNG
through Graphviz's ``dot`` program (run as a subprocess) when it is on PATH.

Raises :class:`RenderError` (a user error) for an unknown suffix, for .svg/.png without
``dot`` (suggesting .dot or .mmd), or when ``dot`` fails. Files are written atomically.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from trainctl.errors import TrainctlError
from trainctl.spec.kinds.dag import GraphPlan

FORMATS = (".svg", ".png", ".dot", ".mmd")
DOT_TIMEOUT_S = 60


class RenderError(TrainctlError):
    """The picture cannot be made (format, missing graphviz)."""


def _shape(shape) -> str:
    return "[" + ",".join(["N", *map(str, shape)]) + "]"


def _edges(plan: GraphPlan):
    """``(source, target, shape label)`` for every edge, inputs first, in plan order."""
    for node in plan.nodes:
        for src, shape in zip(node.inputs, node.input_shapes):
            yield src, node.name, _shape(shape)
    for out in plan.outputs:
        yield out, "__output__", _shape(plan.shape_of(out))


def _quote(text: str) -> str:
    """A DOT string; the labels' ``\\n`` line breaks are kept as DOT escapes."""
    return '"' + text.replace('"', '\\"') + '"'


def to_dot(plan: GraphPlan, name: str = "model") -> str:
    """Graphviz DOT: inputs as ellipses, nodes as boxes labelled ``name\\ntype``, shared
    weights as a dashed edge, the output as a double circle."""
    lines = [f"digraph {_quote(name)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for i in plan.inputs:
        label = i.name + "\\ninput"
        lines.append(f"  {_quote(i.name)} [shape=ellipse, label={_quote(label)}];")
    for n in plan.nodes:
        label = f"{n.name}\\n{n.type}" + (f"\\nshares {n.shared_with}" if n.shared_with else "")
        lines.append(f"  {_quote(n.name)} [shape=box, label={_quote(label)}];")
    lines.append('  "__output__" [shape=doublecircle, label="output"];')
    for src, dst, label in _edges(plan):
        lines.append(f"  {_quote(src)} -> {_quote(dst)} [label={_quote(label)}];")
    for n in plan.nodes:
        if n.shared_with:
            lines.append(f"  {_quote(n.shared_with)} -> {_quote(n.name)} "
                         f'[style=dashed, arrowhead=none, label="shared"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(plan: GraphPlan) -> str:
    """Mermaid ``flowchart TD`` text with the same nodes and labelled edges as :func:`to_dot`."""
    ids = {name: f"n{k}" for k, name in enumerate(
        [i.name for i in plan.inputs] + [n.name for n in plan.nodes] + ["__output__"])}
    lines = ["flowchart TD"]
    for i in plan.inputs:
        lines.append(f'  {ids[i.name]}(["{i.name}<br/>input"])')
    for n in plan.nodes:
        shared = f"<br/>shares {n.shared_with}" if n.shared_with else ""
        lines.append(f'  {ids[n.name]}["{n.name}<br/>{n.type}{shared}"]')
    lines.append(f'  {ids["__output__"]}(("output"))')
    for src, dst, label in _edges(plan):
        lines.append(f'  {ids[src]} -->|"{label}"| {ids[dst]}')
    for n in plan.nodes:
        if n.shared_with:
            lines.append(f"  {ids[n.shared_with]} -.-|shared| {ids[n.name]}")
    return "\n".join(lines) + "\n"


def render(plan: GraphPlan, path: Path, name: str = "model") -> Path:
    """Write the picture of ``plan`` to ``path``; its suffix picks the format (FORMATS).
    Nothing is written on an error."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise RenderError(f"{path}: unknown picture format {suffix or '(none)'!r}; use one of "
                          f"{', '.join(FORMATS)}")
    if suffix == ".mmd":
        _write_atomic(path, to_mermaid(plan).encode("utf-8"))
        return path
    text = to_dot(plan, name)
    if suffix == ".dot":
        _write_atomic(path, text.encode("utf-8"))
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise RenderError(f"{path}: {suffix} needs Graphviz (its 'dot' program is not on PATH: "
                          f"install the graphviz system package, e.g. apt-get install graphviz); "
                          f"write {path.with_suffix('.dot').name} or "
                          f"{path.with_suffix('.mmd').name} instead")
    try:  # ``dot -T svg`` reads DOT on stdin, writes the picture on stdout
        done = subprocess.run([dot, f"-T{suffix[1:]}"], input=text.encode("utf-8"),
                              capture_output=True, timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{path}: Graphviz's dot took more than {DOT_TIMEOUT_S} s") from None
    if done.returncode != 0 or not done.stdout:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RenderError(f"{path}: Graphviz's dot failed (exit {done.returncode}): "
                          f"{why[-1] if why else 'no output'}")
    _write_atomic(path, done.stdout)
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
