"""Dead-code elimination, common-subexpression elimination and constant folding."""

from __future__ import annotations

import torch

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.passes import PASSES

# torch factories whose result depends only on their input's shape, dtype and device.
_SHAPE_ONLY = frozenset({"torch.ones_like", "torch.zeros_like", "torch.full_like"})


@PASSES.register("dce")
def dead_code_elimination(graph: Graph) -> Graph:
    """Remove pure nodes whose value no output and no impure node needs."""
    g = graph.copy()
    live: set[int] = set()
    stack = [o for o in g.outputs if o is not None] + [n for n in g.nodes if n.impure]
    while stack:
        n = stack.pop()
        if id(n) in live:
            continue
        live.add(id(n))
        stack.extend(n.inputs)
    g.nodes = [n for n in g.nodes if id(n) in live]
    return g


def _key(n: Node):
    return (n.op, id(n.fn), tuple(id(i) for i in n.inputs))


@PASSES.register("cse")
def common_subexpression_elimination(graph: Graph) -> Graph:
    """Merge pure nodes computing the same function (same op, attributes) of the same
    inputs; later copies read the first. Leaves, impure nodes and nodes an impure node
    writes to are never merged."""
    g = graph.copy()
    users = g.users()
    seen: dict = {}
    kept = []
    for n in g.nodes:
        if (not n.leaf and not n.impure and n.op != "free"
                and not any(u.impure for u in users[id(n)])):
            first = next((m for m in seen.get(_key(n), ()) if m.same_call(n)), None)
            if first is not None:
                g.replace_uses(n, first)
                continue
            seen.setdefault(_key(n), []).append(n)
        kept.append(n)
    g.nodes = kept
    return g


def _resolve(v, node: Node, values: dict):
    if isinstance(v, Ref):
        return values[id(node.inputs[v.index])]
    if type(v) in (tuple, list):
        return type(v)(_resolve(x, node, values) for x in v)
    if type(v) is dict:
        return {k: _resolve(x, node, values) for k, x in v.items()}
    return v


@PASSES.register("constant_folding")
def constant_folding(graph: Graph) -> Graph:
    """Evaluate pure nodes whose inputs are all constants now, and shape-only factories
    (``ones_like``, ``zeros_like``, ``full_like`` of any value: shapes are fixed by the
    signature), into new ``constant`` nodes. A constant some impure node writes to is
    not a constant; a node read by an impure node is not folded."""
    g = graph.copy()
    users = g.users()
    values: dict[int, torch.Tensor] = {}
    for n in g.nodes:
        written = any(u.impure for u in users[id(n)])
        if n.op == "constant" and not written:
            values[id(n)] = n.value
            continue
        if n.leaf or n.impure or n.op == "free" or written or n.fn is None:
            continue
        shape_only = n.op in _SHAPE_ONLY
        if not shape_only and not all(id(i) in values for i in n.inputs):
            continue
        if shape_only:
            sub = {id(i): values.get(id(i)) if id(i) in values else
                   torch.empty(i.shape, dtype=i.dtype, device=i.device) for i in n.inputs}
        else:
            sub = values
        out = n.fn(*_resolve(n.args, n, sub), **_resolve(n.kwargs, n, sub))
        if not isinstance(out, torch.Tensor):
            continue
        n.op, n.inputs, n.fn, n.args, n.kwargs, n.value = "constant", [], None, (), {}, out
        values[id(n)] = out
    return g
