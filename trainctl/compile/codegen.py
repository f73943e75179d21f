"""Execution: a graph becomes straight-line Python calling torch kernels, compiled once.

:func:`generate` writes the source of ``run(inputs)`` (one line per node, inspectable with
``trainctl graph SPEC --ir``); :func:`compile_graph` compiles it with the functions,
variables and captured tensors it names bound as globals. Ops whose forward is exactly
one torch call on their inputs (``add`` is ``torch.add(a, b)``) call that kernel directly,
skipping the forward's shape checks (they passed while tracing, and shapes are fixed by
the input signature); ops with a rule in :mod:`trainctl.compile.lower` (``sum_to``,
``permute``, 2-D ``matmul_nd``...) are written as the torch calls their forward makes,
unless ``lowering=False``. A ``free`` node becomes ``del``: tensors no later node reads are
released at once.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.lower import lower

# Ops whose forward is this one torch kernel on the same positional inputs, no attributes.
DIRECT: dict[str, Callable] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "neg": torch.neg,
    "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "abs": torch.abs,
    "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "maximum": torch.maximum, "minimum": torch.minimum, "matmul_nd": torch.matmul,
    "pow": torch.pow,
}


class _Namespace:
    """Globals of the generated code: names for objects that are not literals."""

    def __init__(self):
        self.globals: dict[str, Any] = {"torch": torch, "math": math}
        self._ids: dict[int, str] = {}

    def name(self, obj: Any, prefix: str) -> str:
        key = id(obj)
        if key not in self._ids:
            base = getattr(obj, "__name__", "") if prefix == "K" else ""
            base = "".join(c if c.isalnum() or c == "_" else "_" for c in base)[:24]
            self._ids[key] = f"{prefix}{len(self._ids)}{'_' + base if base else ''}"
            self.globals[self._ids[key]] = obj
        return self._ids[key]

    def literal(self, v: Any, node: Node) -> str:
        if isinstance(v, Ref):
            return node.inputs[v.index].name
        if v is None or isinstance(v, (bool, str)) or type(v) is int:
            return repr(v)
        if type(v) is float:
            return repr(v) if math.isfinite(v) else f"float({str(v)!r})"
        if isinstance(v, torch.dtype):
            return str(v)
        if isinstance(v, slice):
            return f"slice({self.literal(v.start, node)}, {self.literal(v.stop, node)}, " \
                   f"{self.literal(v.step, node)})"
        if v is Ellipsis:
            return "..."
        if type(v) in (tuple, list):
            body = ", ".join(self.literal(x, node) for x in v)
            return f"({body},)" if type(v) is tuple and len(v) == 1 else \
                (f"({body})" if type(v) is tuple else f"[{body}]")
        if type(v) is dict:
            return "{" + ", ".join(f"{k!r}: {self.literal(x, node)}" for k, x in v.items()) + "}"
        return self.name(v, "A")


def _line(node: Node, ns: _Namespace, lowering: bool = True) -> str:
    op = node.op
    if op == "input":
        return f"{node.name} = inputs[{node.value}]"
    if op == "variable":
        return f"{node.name} = {ns.name(node.value, 'V')}.data"
    if op in ("constant", "state"):
        return f"{node.name} = {ns.name(node.value, 'C')}"
    if op == "free":
        return "del " + ", ".join(i.name for i in node.inputs)
    expr = lower(node, ns) if lowering else None
    if expr is not None:
        return f"{node.name} = {expr}"
    fn = DIRECT.get(op) if not node.kwargs else None
    fn = fn or node.fn
    name = getattr(fn, "__name__", "")
    fn_name = f"torch.{name}" if name and getattr(torch, name, None) is fn else ns.name(fn, "K")
    args = [ns.literal(a, node) for a in node.args]
    args += [f"{k}={ns.literal(v, node)}" for k, v in node.kwargs.items()]
    return f"{node.name} = {fn_name}({', '.join(args)})"


def generate(graph: Graph, lowering: bool = True) -> tuple[str, dict[str, Any]]:
    """(source of ``def run(inputs)``, its globals) for ``graph``; ``lowering=False``
    calls every op's own function instead of the rules of :mod:`.lower`."""
    ns = _Namespace()
    body = [_line(n, ns, lowering) for n in graph.nodes]
    outs = ", ".join("None" if o is None else o.name for o in graph.outputs)
    body.append(f"return ({outs}{',' if len(graph.outputs) == 1 else ''})")
    src = f"def run(inputs):\n    # graph {graph.name}: {len(graph.nodes)} nodes\n" + \
        "\n".join("    " + line for line in body) + "\n"
    return src, ns.globals


def compile_graph(graph: Graph, lowering: bool = True) -> tuple[Callable[[list], tuple], str]:
    """(``run(list of input torch tensors) -> tuple of output values``, its source)."""
    src, globs = generate(graph, lowering)
    code = compile(src, f"<graph {graph.name}>", "exec")
    exec(code, globs)  # our own generated source, never user input
    return globs["run"], src
