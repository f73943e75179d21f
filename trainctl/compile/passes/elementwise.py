"""Elementwise fusion: composite kernels for known chains, then each chain or tree of
elementwise nodes as one fused node that runs in place in one buffer.

Without a kernel compiler a fused node cannot merge the loops of its kernels; what it
saves is kernels (a rule's ``mul(g, to(gt(x, 0)))`` is one ``threshold_backward``: one
pass over memory instead of three and no mask tensors), allocations (the chain writes
into one buffer) and interpreter work (one call in the generated code). With
``graph: {compiler: inductor}`` (:mod:`trainctl.compile.inductor`) each fused node's pure
form is handed to torch.compile, which does merge the loops.
"""

from __future__ import annotations

from typing import Callable

import torch

from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.passes import PASSES

aten = torch.ops.aten

# Elementwise ops taking only tensor inputs (no attributes), by the torch kernel run for
# them; each has an ``out=`` form, relu an in-place one (torch.relu has no out=).
KERNELS: dict[str, Callable] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow,
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "abs": torch.abs, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
    "where": torch.where,
}
# The composites :func:`fuse_elementwise` writes (torch's own backward kernels), with the
# ``out=`` overload (keyword ``grad_input``) used inside a fused node.
COMPOSITES: dict[str, tuple[Callable, Callable]] = {
    "threshold_backward": (aten.threshold_backward.default, aten.threshold_backward.grad_input),
    "sigmoid_backward": (aten.sigmoid_backward.default, aten.sigmoid_backward.grad_input),
    "tanh_backward": (aten.tanh_backward.default, aten.tanh_backward.grad_input),
    "addcmul": (torch.addcmul, torch.addcmul),
}
_FUSABLE = frozenset(KERNELS) | frozenset(COMPOSITES)


class FusedKernel:
    """The callable of a ``fused_elementwise`` node: ``steps`` is the chain, each
    ``(op, argument template)`` where ``("in", i)`` is the fused node's i-th input and
    ``("step", k)`` the value of step k. Calling it runs the chain in place (each step
    writes over the buffer of a step it reads; bit-identical to the chain); :attr:`pure`
    is the same chain with a fresh tensor per step, for kernel compilers. Both are
    straight-line Python generated once (:attr:`source`: the in-place one)."""

    __name__ = "fused_elementwise"

    def __init__(self, steps: list):
        self.steps = steps
        self.source = _source(steps, inplace=True)
        self.pure = _compile(_source(steps, inplace=False))
        self._run = _compile(self.source)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self._run(*inputs)

    def __repr__(self) -> str:
        return "fused_elementwise(" + ", ".join(op for op, _ in self.steps) + ")"


_GLOBALS = {"torch": torch, **{f"K_{op}": fn for op, fn in KERNELS.items()},
            **{f"P_{op}": fns[0] for op, fns in COMPOSITES.items()},
            **{f"O_{op}": fns[1] for op, fns in COMPOSITES.items()}}


def _source(steps: list, inplace: bool) -> str:
    n_in = 1 + max((i for _, tmpl in steps for kind, i in tmpl if kind == "in"), default=-1)
    lines = [f"def fused({', '.join(f'i{k}' for k in range(n_in))}):"]
    buffers: list[str] = []  # the tensor holding each step's value
    for k, (op, tmpl) in enumerate(steps):
        args = [f"i{i}" if kind == "in" else buffers[i] for kind, i in tmpl]
        extra = ", 0" if op == "threshold_backward" else ""
        buf = next((buffers[i] for kind, i in tmpl if kind == "step"), None) if inplace else None
        if buf is None:
            buf = f"s{k}"
            call = f"P_{op}({', '.join(args)}{extra})" if op in COMPOSITES else \
                f"K_{op}({', '.join(args)})"
        elif op == "relu":  # torch.relu has no out=; its input is the buffer
            call = f"torch.relu_({buf})"
        elif op in COMPOSITES:
            out = "out" if op == "addcmul" else "grad_input"
            call = f"O_{op}({', '.join(args)}{extra}, {out}={buf})"
        else:
            call = f"K_{op}({', '.join(args)}, out={buf})"
        lines.append(f"    {buf} = {call}")
        buffers.append(buf)
    lines.append(f"    return {buffers[-1]}")
    return "\n".join(lines) + "\n"


def _compile(source: str):
    scope = dict(_GLOBALS)
    exec(compile(source, "<fused_elementwise>", "exec"), scope)  # generated here, not input
    return scope["fused"]


def _const(n: Node, value: float) -> bool:
    return (n.op == "constant" and isinstance(n.value, torch.Tensor) and n.value.numel() == 1
            and bool(n.value.reshape(()) == value))


def _args(n: Node) -> list[Node] | None:
    """The tensor arguments of n in call order, or None if n has attributes (but for a
    ``threshold_backward`` written by :func:`_set`, whose threshold is always 0)."""
    args = n.args[:-1] if n.op == "threshold_backward" and n.args[-1:] == (0,) else n.args
    if n.kwargs or not all(isinstance(a, Ref) for a in args):
        return None
    return [n.inputs[a.index] for a in args]


def _set(n: Node, op: str, args: list[Node]) -> None:
    inputs = list(dict.fromkeys(args))
    n.op, n.fn, n.inputs, n.kwargs = op, COMPOSITES[op][0], inputs, {}
    n.args = tuple(Ref(inputs.index(a)) for a in args) + \
        ((0,) if op == "threshold_backward" else ())


def _composite(n: Node, users: dict, outputs: set) -> bool:
    """Rewrite n in place into a composite kernel if it ends a known chain."""
    def only(m: Node, op: str) -> bool:  # m is op, read by n alone, not an output
        return m.op == op and not m.impure and users[id(m)] == [n] and id(m) not in outputs

    def inner(m: Node, op: str) -> bool:  # m is op, read only by the node reading n's operand
        return m.op == op and not m.impure and len(users[id(m)]) == 1 and id(m) not in outputs

    if n.op == "relu_grad" and not n.impure and _args(n) and n.shape is not None:
        _set(n, "threshold_backward", _args(n))  # the kernel relu_grad's forward calls
        return True
    args = _args(n) if n.op in ("mul", "add") and not n.impure else None
    if args is None or len(args) != 2 or n.shape is None:
        return False
    for g, m in (args, args[::-1]):
        if g.shape != n.shape or g.dtype != n.dtype:
            continue
        if n.op == "add" and only(m, "mul") and m.shape == n.shape and _args(m):
            _set(n, "addcmul", [g, *_args(m)])
            return True
        if n.op != "mul" or not only(m, m.op):
            continue
        if m.op == "torch.to" and m.args[1:] == (n.dtype,) and not m.kwargs:
            c = m.inputs[0]
            if (inner(c, "torch.gt") and c.args[1:] == (0,) and not c.kwargs
                    and c.inputs[0].shape == n.shape):
                _set(n, "threshold_backward", [g, c.inputs[0]])
                return True
        ma = _args(m)
        if m.op == "sub" and ma and _const(ma[0], 1.0):  # g * (1 - t*t)
            sq = ma[1]
            sa = _args(sq)
            if inner(sq, "mul") and sa and sa[0] is sa[1] and sa[0].shape == n.shape:
                _set(n, "tanh_backward", [g, sa[0]])
                return True
        if m.op == "mul" and ma:  # g * (s * (1 - s))
            for s, one_minus in (ma, ma[::-1]):
                oa = _args(one_minus)
                if (inner(one_minus, "sub") and oa and _const(oa[0], 1.0) and oa[1] is s
                        and s.shape == n.shape):
                    _set(n, "sigmoid_backward", [g, s])
                    return True
    return False


def _fusable(n: Node, root: Node) -> bool:
    return (n.op in _FUSABLE and not n.impure and n.shape == root.shape
            and n.dtype == root.dtype and _args(n) is not None
            and (n.op != "where" or n.inputs[n.args[0].index].dtype == torch.bool))


def _groups(g: Graph) -> list[list[Node]]:
    """Chains/trees of fusable nodes, each in program order ending at its root: every
    other member is read once, by a member, and is no output; no impure node between a
    member and its root reads that member's inputs (so running it late is the same)."""
    users = g.users()
    outputs = {id(o) for o in g.outputs if o is not None}
    pos = {id(n): k for k, n in enumerate(g.nodes)}
    impure = [k for k, n in enumerate(g.nodes) if n.impure]
    root_of: dict[int, Node] = {}
    for n in reversed(g.nodes):
        us = users[id(n)]
        if len(us) == 1 and id(n) not in outputs and id(us[0]) in root_of:
            root = root_of[id(us[0])]
            if _fusable(n, root) and not any(
                    pos[id(n)] < k < pos[id(root)]
                    and set(map(id, g.nodes[k].inputs)) & set(map(id, n.inputs))
                    for k in impure):
                root_of[id(n)] = root
                continue
        if n.shape is not None and _fusable(n, n):
            root_of[id(n)] = n
    members: dict[int, list[Node]] = {}
    for n in g.nodes:
        if id(n) in root_of:
            members.setdefault(id(root_of[id(n)]), []).append(n)
    return [m for m in members.values() if len(m) > 1]


def _fuse(group: list[Node]) -> None:
    """The root (last member) becomes the fused node of the group."""
    root = group[-1]
    index = {id(m): k for k, m in enumerate(group)}
    inputs: list[Node] = []
    steps = []
    for m in group:
        tmpl = []
        for a in _args(m):
            if id(a) in index:
                tmpl.append(("step", index[id(a)]))
            else:
                if a not in inputs:
                    inputs.append(a)
                tmpl.append(("in", inputs.index(a)))
        steps.append((m.op, tuple(tmpl)))
    root.op, root.fn = "fused_elementwise", FusedKernel(steps)
    root.inputs, root.args, root.kwargs = inputs, tuple(Ref(i) for i in range(len(inputs))), {}


@PASSES.register("fuse_elementwise")
def fuse_elementwise(graph: Graph) -> Graph:
    """First the chains torch has one kernel for become that kernel: relu's rule
    ``relu_grad(g, y)`` and a rule's ``g * to(x > 0)`` are ``threshold_backward(g, y, 0)``, ``g * (1 - t*t)``
    ``tanh_backward(g, t)``, ``g * (s * (1 - s))`` ``sigmoid_backward(g, s)`` and
    ``a + b*c`` ``addcmul(a, b, c)`` (torch's autograd uses the same kernels; they may
    round differently from the chain in the last bit, and threshold_backward gives +0
    where the mask is 0 and g is negative or not finite). Then each tree of elementwise
    nodes (:data:`KERNELS`, the composites) of one shape and dtype whose inner nodes have
    a single reader becomes one ``fused_elementwise`` node (:class:`FusedKernel`) that
    runs the same kernels in the same order in one buffer: bit-identical. Impure nodes are
    never fused and nothing is moved across an impure node reading a fused input."""
    g = graph.copy()
    users = g.users()
    outputs = {id(o) for o in g.outputs if o is not None}
    for n in g.nodes:
        _composite(n, users, outputs)
    from trainctl.compile.passes.cleanup import dead_code_elimination
    g = dead_code_elimination(g)
    for group in _groups(g):
        _fuse(group)
    return dead_code_elimination(g)
