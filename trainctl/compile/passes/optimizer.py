"""Optimizer updates of all parameters in one fused kernel call."""

from __future__ import annotations

from trainctl.compile.ir import Graph, Ref
from trainctl.compile.optimizer import AdamFused, OptimizerStep
from trainctl.compile.passes import PASSES


@PASSES.register("foreach_optimizer")
def foreach_optimizer(graph: Graph) -> Graph:
    """An ``optimizer_update`` node of an Adam or AdamW optimizer that
    :meth:`AdamFused.applies` to (its gradients as traced: every one present, of its
    parameter's dtype and device) becomes one ``adam_fused`` node: the same update as
    :func:`trainctl.optim.adam.adam_fused_step`, which the eager step also uses when
    it applies, so graph and eager give the same values."""
    g = graph.copy()
    for n in g.nodes:
        if n.op == "optimizer_update" and isinstance(n.fn, OptimizerStep):
            grads = [n.inputs[a.index] if isinstance(a, Ref) else a
                     for a in n.args[n.fn.lead:]]
            if AdamFused.applies(n.fn.optimizer, grads):
                n.op, n.fn = "adam_fused", AdamFused(n.fn)
    return g
