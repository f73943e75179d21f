"""Liveness: free each intermediate tensor right after its last reader."""

from __future__ import annotations

from trainctl.compile.ir import Graph
from trainctl.compile.passes import PASSES


@PASSES.register("liveness")
def liveness(graph: Graph) -> Graph:
    """After each node, a ``free`` node (``del`` in the generated code) lists the values
    whose last reader it was, unless they are outputs. Weights, captured tensors and
    inputs are not the graph's to free. Intermediates then go back to the allocator as
    early as in eager mode, where reference counting frees them. Run it last."""
    g = graph.copy()
    g.nodes = [n for n in g.nodes if n.op != "free"]
    last: dict[int, int] = {}
    for pos, n in enumerate(g.nodes):
        for i in n.inputs:
            last[id(i)] = pos
    keep = {id(o) for o in g.outputs if o is not None}
    dying: dict[int, list] = {}
    for n in g.nodes:
        if n.leaf or id(n) in keep:
            continue
        pos = last.get(id(n))
        if pos is not None:
            dying.setdefault(pos, []).append(n)
    out = []
    for pos, n in enumerate(g.nodes):
        out.append(n)
        if pos in dying:
            free = g.add("free", dying[pos], impure=True)
            g.nodes.pop()  # add() appended it at the end; place it here instead
            out.append(free)
    g.nodes = out
    return g
