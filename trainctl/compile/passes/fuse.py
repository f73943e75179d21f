"""Fusion: matmul + bias (+ relu) into one addmm-style kernel."""

from __future__ import annotations

import torch

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.passes import PASSES


def _bias_of(add: Node, mm: Node) -> Node | None:
    """The other operand of ``add`` when it is a bias row for ``mm`` ([n] or [1, n])."""
    other = add.inputs[1] if add.inputs[0] is mm else add.inputs[0]
    n = mm.shape[-1]
    if other is mm or other.shape not in ((n,), (1, n)) or other.dtype != mm.dtype:
        return None
    return other


@PASSES.register("fuse_addmm")
def fuse_addmm(graph: Graph) -> Graph:
    """``add(matmul_nd(a, w), b)`` with 2-D a, w and a bias row b becomes
    ``torch.addmm(b, a, w)`` (one kernel: the bias is the GEMM's accumulator), and a
    ``relu`` that is the only reader of that sum becomes
    ``torch._addmm_activation(b, a, w)``. The matmul must have no other reader. addmm adds
    the bias inside the GEMM, so results may differ from matmul-then-add in the last bit."""
    g = graph.copy()
    users = g.users()
    for add in g.nodes:
        if add.op != "add" or add.impure or len(add.inputs) != 2:
            continue
        mm = next((i for i in add.inputs if i.op == "matmul_nd" and len(i.inputs) == 2
                   and len(i.shape or ()) == 2 and len(users[id(i)]) == 1
                   and i not in g.outputs), None)
        if mm is None or add.shape != mm.shape:
            continue
        bias = _bias_of(add, mm)
        if bias is None:
            continue
        a, w = mm.inputs
        if len(a.shape) != 2 or len(w.shape) != 2:
            continue
        add.op, add.fn = "addmm", torch.addmm
        add.inputs, add.args, add.kwargs = [bias, a, w], (Ref(0), Ref(1), Ref(2)), {}
        users[id(bias)].append(add)
        relu = users[id(add)]
        if (len(relu) == 1 and relu[0].op == "relu" and not relu[0].impure
                and add not in g.outputs):
            r = relu[0]
            r.op, r.fn, r.inputs = "addmm_relu", torch._addmm_activation, [bias, a, w]
            r.args, r.kwargs = (Ref(0), Ref(1), Ref(2)), {}
    return _drop_unused(g)


def _drop_unused(g: Graph) -> Graph:
    from trainctl.compile.passes.cleanup import dead_code_elimination
    return dead_code_elimination(g)
