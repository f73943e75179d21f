"""Softmax cross-entropy: its forward gather and its log_softmax backward as one kernel each."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.passes import PASSES


def _only_user(n: Node, users: dict, graph: Graph) -> bool:
    return len(users[id(n)]) == 1 and not n.impure and n not in graph.outputs


def _axis(n: Node) -> int | None:
    axis = n.kwargs.get("axis", -1)
    if not isinstance(axis, int) or n.shape is None:
        return None
    return axis % len(n.shape)


def _backward(n: Node, users: dict, g: Graph) -> bool:
    """sub(G, mul(exp(LS), sum(G, axis, keepdims))) -> _log_softmax_backward_data(G, LS)."""
    if n.op != "sub" or len(n.inputs) != 2:
        return False
    grad, m = n.inputs
    if m.op != "mul" or len(m.inputs) != 2 or not _only_user(m, users, g):
        return False
    e, s = m.inputs if m.inputs[0].op == "exp" else m.inputs[::-1]
    if e.op != "exp" or s.op != "sum" or not _only_user(e, users, g) or \
            not _only_user(s, users, g):
        return False
    ls = e.inputs[0]
    d = _axis(ls) if ls.op == "log_softmax" else None
    if d is None or s.inputs[0] is not grad or s.kwargs.get("keepdims") is not True or \
            _axis(s) != d or not (grad.shape == ls.shape == n.shape) or grad.dtype != ls.dtype:
        return False
    n.op, n.fn, n.inputs = "log_softmax_backward", torch._log_softmax_backward_data, [grad, ls]
    n.args, n.kwargs = (Ref(0), Ref(1), d, ls.dtype), {}
    return True


def _forward(n: Node, users: dict, g: Graph) -> bool:
    """neg(reshape(take_along_axis(LS, reshape(Y, (-1, 1)), axis=1), (-1,))) with a 2-D
    log_softmax LS and 1-D int64 labels Y -> nll_loss(LS, Y, reduction='none')."""
    if n.op != "neg" or not n.inputs:
        return False
    r = n.inputs[0]
    if r.op != "reshape" or not _only_user(r, users, g) or not r.inputs:
        return False
    t = r.inputs[0]
    if t.op != "take_along_axis" or len(t.inputs) != 2 or not _only_user(t, users, g):
        return False
    ls, idx = t.inputs
    if ls.op != "log_softmax" or len(ls.shape or ()) != 2 or t.kwargs.get("axis") not in (1, -1):
        return False
    if idx.op != "reshape" or not idx.inputs or idx.shape != (ls.shape[0], 1):
        return False
    y = idx.inputs[0]
    if y.shape != (ls.shape[0],) or y.dtype != torch.int64 or n.shape != (ls.shape[0],):
        return False
    n.op, n.fn, n.inputs = "nll_loss", F.nll_loss, [ls, y]
    n.args, n.kwargs = (Ref(0), Ref(1)), {"reduction": "none"}
    return True


@PASSES.register("fuse_softmax_xent")
def fuse_softmax_cross_entropy(graph: Graph) -> Graph:
    """Sparse softmax cross-entropy, forward and backward, each as one torch kernel:

    - forward: the gather of the labels' log-probabilities and its negation
      (``neg(reshape(take_along_axis(log_softmax(z), y)))``) becomes
      ``nll_loss(log_softmax(z), y, reduction='none')`` (the same values exactly);
    - backward: log_softmax's rule ``g − exp(out)·Σg`` (four ops) becomes torch's
      ``_log_softmax_backward_data`` (one pass; the row sum may round differently).

    The replaced intermediates must have no other reader; ``dce`` removes them."""
    g = graph.copy()
    users = g.users()
    for n in g.nodes:
        if not n.impure:
            _backward(n, users, g) or _forward(n, users, g)
    from trainctl.compile.passes.cleanup import dead_code_elimination
    return dead_code_elimination(g)
