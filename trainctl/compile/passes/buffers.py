"""Persistent buffers: matrix products write into tensors allocated once, not per step."""

from __future__ import annotations

import torch

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.passes import PASSES

# Products given a buffer: their torch kernel takes ``out=`` (matmul_nd only for two
# matrices, which codegen writes as torch.mm).
PRODUCERS = frozenset({"matmul_nd", "addmm", "addmm_relu"})
# Ops whose result is a new tensor: reading a buffer, they neither keep nor return it
# (unless an ``out=`` names it). adam_fused only reads its gradients during the call.
CONSUMERS = frozenset({
    "matmul_nd", "addmm", "addmm_relu", "add", "sub", "mul", "div", "neg", "exp", "log",
    "sqrt", "abs", "relu", "sigmoid", "tanh", "maximum", "minimum", "pow",
    "threshold_backward", "sigmoid_backward", "tanh_backward", "log_softmax",
    "log_softmax_backward", "nll_loss", "adam_fused",
    "fused_elementwise"})  # its first step makes a new tensor, later ones write in that
# Ops whose result may share the buffer's memory (a view, or the input itself).
VIEWS = frozenset({"permute", "reshape", "sum_to"})


def _escapes(n: Node, users: dict, outputs: set) -> bool:
    """Whether ``n``'s memory may outlive the step: it (or a view of it, or an op
    writing into it) is an output, or a reader is not known to leave it alone."""
    if id(n) in outputs or n.impure and n.op != "adam_fused":
        return True
    for u in users[id(n)]:
        writes_into = any(isinstance(v, Ref) and u.inputs[v.index] is n
                          for v in u.kwargs.values())
        if u.op in VIEWS or writes_into:
            if _escapes(u, users, outputs):
                return True
        elif u.op not in CONSUMERS:
            return True
    return False


def _bufferable(n: Node) -> bool:
    if n.op not in PRODUCERS or n.impure or n.kwargs or n.shape is None or n.dtype is None:
        return False
    if n.device is None or torch.device(n.device).type != "cpu":
        return False
    if n.op == "matmul_nd":
        return n.args == (Ref(0), Ref(1)) and all(len(i.shape or ()) == 2 for i in n.inputs)
    return True


@PASSES.register("persistent_buffers")
def persistent_buffers(graph: Graph) -> Graph:
    """On CPU, a matrix product (2-D ``matmul_nd``, ``addmm``, ``addmm_relu``) whose value
    does not outlive the step (not an output, nor viewed or written into by something
    that is; read only by ops that make new tensors, such as the fused Adam update)
    writes with ``out=`` into a ``state`` tensor allocated once for it. Gradients and
    activations of large layers then reuse the same pages every step instead of a fresh
    allocation each time (large allocations are new ``mmap`` pages, each faulted in on
    first touch). The same kernels run, so values are bit-identical; memory stays
    allocated between steps."""
    g = graph.copy()
    users = g.users()
    outputs = {id(o) for o in g.outputs if o is not None}
    nodes = []
    for n in g.nodes:
        if _bufferable(n) and not _escapes(n, users, outputs):
            buf = torch.empty(n.shape, dtype=n.dtype, device=n.device)
            state = g.add("state", value=buf, shape=n.shape, dtype=n.dtype, device=n.device)
            g.nodes.pop()  # add() appended it; it goes right before its writer
            nodes.append(state)
            n.inputs = [*n.inputs, state]
            n.kwargs = {"out": Ref(len(n.inputs) - 1)}
            if n.op == "matmul_nd":
                n.fn = torch.mm  # the op's own function takes no out=
        nodes.append(n)
    g.nodes = nodes
    return g
