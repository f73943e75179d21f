"""Algebraic simplification: identities that leave a value unchanged."""

from __future__ import annotations

import torch

from trainctl.compile.ir import Graph, Node
from trainctl.compile.passes import PASSES


def _is_scalar(n: Node, value: float) -> bool:
    """n is a constant whose every element equals ``value``."""
    if n.op != "constant" or not isinstance(n.value, torch.Tensor) or n.value.numel() > 4096:
        return False
    return bool((n.value == value).all())


def _identity_of(n: Node) -> Node | None:
    """The input ``n`` equals (same shape and dtype), if ``n`` is an identity."""
    def same(x: Node) -> bool:
        return x.shape == n.shape and x.dtype == n.dtype

    ins = n.inputs
    if n.op in ("mul", "div") and len(ins) == 2 and _is_scalar(ins[1], 1.0) and same(ins[0]):
        return ins[0]
    if n.op == "mul" and len(ins) == 2 and _is_scalar(ins[0], 1.0) and same(ins[1]):
        return ins[1]
    if n.op in ("add", "sub") and len(ins) == 2 and _is_scalar(ins[1], 0.0) and same(ins[0]):
        return ins[0]
    if n.op == "add" and len(ins) == 2 and _is_scalar(ins[0], 0.0) and same(ins[1]):
        return ins[1]
    if n.op == "neg" and ins and ins[0].op == "neg" and same(ins[0].inputs[0]):
        return ins[0].inputs[0]
    if n.op in ("cast", "sum_to", "reshape", "broadcast_to") and len(ins) == 1 and same(ins[0]):
        return ins[0]
    return None


@PASSES.register("algebraic_simplification")
def algebraic_simplification(graph: Graph) -> Graph:
    """x·1, 1·x, x/1, x+0, 0+x, x−0, −(−x), and a cast, reshape, broadcast_to or sum_to to
    the input's own shape and dtype all become x (exact: x·1 and x+0 are x bit for bit,
    except that −0 + 0 gives +0). A node some impure node writes to is kept. The bypassed
    nodes are left to ``dce``."""
    g = graph.copy()
    users = g.users()
    for n in g.nodes:
        if n.impure or n.leaf or any(u.impure for u in users[id(n)]):
            continue
        same = _identity_of(n)
        if same is not None:
            g.replace_uses(n, same)
    return g
