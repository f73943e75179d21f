"""Buffer reuse: an elementwise kernel writes into a dying intermediate's buffer."""

from __future__ import annotations

from trainctl.compile.codegen import DIRECT
from trainctl.compile.ir import Graph, Node
from trainctl.compile.passes import PASSES

# Elementwise ops whose torch kernel takes ``out=`` and may write over an input.
ELEMENTWISE = frozenset({"add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "abs",
                         "sigmoid", "tanh", "maximum", "minimum"})  # torch.relu has no out=
# Ops whose result is a new tensor no one else holds (never a view of a weight or input).
OWNED = ELEMENTWISE | {"relu", "addmm", "addmm_relu", "matmul_nd", "log_softmax"}


def _owned(n: Node) -> bool:
    return n.op in OWNED and not n.impure and n.shape is not None


@PASSES.register("buffer_reuse")
def buffer_reuse(graph: Graph) -> Graph:
    """``v = add(a, b)`` where ``a`` is an intermediate this graph owns (made by an
    elementwise op, a matmul or log_softmax: never a view), of v's shape and dtype,
    that no other node (so no view of it) and no output reads becomes
    ``add(a, b, out=a)``: a chain of elementwise ops reuses one buffer instead of
    allocating a tensor per op. The same kernels run, so values are bit-identical."""
    g = graph.copy()
    users = g.users()
    outputs = {id(o) for o in g.outputs if o is not None}
    for n in g.nodes:
        if n.op not in ELEMENTWISE or n.impure or n.kwargs or n.shape is None:
            continue
        for k, a in enumerate(n.inputs):
            if (_owned(a) and id(a) not in outputs and len(users[id(a)]) == 1
                    and a.shape == n.shape and a.dtype == n.dtype):
                n.fn = DIRECT[n.op]
                n.kwargs = {"out": n.args[k]}
                break
    return g

