"""Optimizer updates batched across parameters with torch's ``_foreach_*`` kernels."""

from __future__ import annotations

from trainctl.compile.ir import Graph
from trainctl.compile.optimizer import AdamForeach, OptimizerStep
from trainctl.compile.passes import PASSES


@PASSES.register("foreach_optimizer")
def foreach_optimizer(graph: Graph) -> Graph:
    """An ``optimizer_update`` node of an Adam or AdamW optimizer that
    :meth:`AdamForeach.applies` to becomes one ``adam_foreach`` node: the same update,
    each step of it one ``torch._foreach_*`` call over all parameters (the same per-tensor
    kernels and order of operations, so the same values bit for bit)."""
    g = graph.copy()
    for n in g.nodes:
        if n.op == "optimizer_update" and isinstance(n.fn, OptimizerStep):
            if AdamForeach.applies(n.fn.optimizer, n.args[n.fn.lead:]):
                n.op, n.fn = "adam_foreach", AdamForeach(n.fn)
    return g

