"""The graph IR: a straight-line list of nodes in program order, each one call.

A :class:`Node` is ``fn(*args, **kwargs)`` where ``args``/``kwargs`` are templates in
which :class:`Ref` ``i`` stands for ``inputs[i]`` (another node's value) and every other
leaf is a literal attribute. Its ``op`` names what it computes:

- ``input`` (the i-th tensor argument of the traced function), ``variable`` (a
  :class:`~trainctl.autodiff.Variable`, read as ``var.data`` at each run, so swapped or
  restored weights are seen), ``constant`` (a torch tensor made during tracing from no
  traced value: frozen) and ``state`` (a tensor that existed before tracing, e.g. a
  batch-normalization moving statistic or a cached constant: captured by reference,
  never folded);
- an autodiff op name from the ops registry (``add``, ``matmul_nd``, ``log_softmax``...,
  computed by its forward on torch tensors);
- ``torch.<name>``: a torch call made outside any op (an op's rule, a layer's mask, an
  in-place statistics update), replayed as recorded;
- ``getitem_out``: element ``index`` of a node whose value is a tuple;
- effects and fused kernels added by passes (``optimizer_update``, ``adam_fused``,
  ``addmm``...).

``shape``, ``dtype`` and ``device`` are those seen while tracing (None for non-tensors).
``impure`` nodes (in-place updates, random draws, effects) are never removed, merged or
moved by a pass. Passes build new graphs (:meth:`Graph.copy`) and never mutate their input.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator

import torch


@dataclasses.dataclass(frozen=True)
class Ref:
    """Placeholder for ``node.inputs[index]`` inside a node's argument template."""

    index: int


@dataclasses.dataclass(eq=False)
class Node:
    """One value of the graph: ``fn(*args, **kwargs)`` with :class:`Ref` s resolved."""

    name: str
    op: str
    inputs: list["Node"]
    fn: Callable | None = None
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    shape: tuple | None = None
    dtype: torch.dtype | None = None
    device: torch.device | None = None
    impure: bool = False
    value: Any = None  # input index, Variable, or the captured torch tensor

    @property
    def attrs(self) -> dict:
        """The non-tensor arguments: keyword ones by name, positional ones as ``arg<i>``."""
        out = {f"arg{i}": a for i, a in enumerate(self.args) if not isinstance(a, Ref)}
        out.update({k: v for k, v in self.kwargs.items() if not _has_ref(v)})
        return out

    @property
    def leaf(self) -> bool:
        return self.op in LEAVES

    def same_call(self, other: "Node") -> bool:
        """True when both compute the same function of the same inputs (for CSE)."""
        return (self.fn is other.fn and self.op == other.op
                and len(self.inputs) == len(other.inputs)
                and all(a is b for a, b in zip(self.inputs, other.inputs))
                and _same(self.args, other.args) and _same(self.kwargs, other.kwargs))


LEAVES = frozenset({"input", "variable", "constant", "state"})


def _has_ref(v) -> bool:
    if isinstance(v, Ref):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_ref(x) for x in v)
    if isinstance(v, dict):
        return any(_has_ref(x) for x in v.values())
    return False


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # objects without a usable ==
        return a is b


class Graph:
    """Nodes in program order, the input placeholders and the outputs.

    ``outputs``: one Node (or None for a Python value kept in ``out_tree``) per tensor leaf
    of the traced function's result; ``out_tree`` rebuilds the result structure.
    """

    def __init__(self, name: str = "fn"):
        self.name = name
        self.nodes: list[Node] = []
        self.outputs: list[Node] = []
        self.out_tree: Any = None
        self._count = 0

    def add(self, op: str, inputs=(), **fields) -> Node:
        node = Node(f"v{self._count}", op, list(inputs), **fields)
        self._count += 1
        self.nodes.append(node)
        return node

    @property
    def inputs(self) -> list[Node]:
        return sorted((n for n in self.nodes if n.op == "input"), key=lambda n: n.value)

    def users(self) -> dict[int, list[Node]]:
        """id(node) -> the nodes that read it, in program order."""
        out: dict[int, list[Node]] = {id(n): [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[id(i)].append(n)
        return out

    def copy(self) -> "Graph":
        """A new graph with new nodes (same fields, inputs remapped): passes edit copies."""
        g = Graph(self.name)
        g._count, g.out_tree = self._count, self.out_tree
        mapping: dict[int, Node] = {}
        for n in self.nodes:
            m = dataclasses.replace(n, inputs=[mapping[id(i)] for i in n.inputs],
                                    kwargs=dict(n.kwargs))
            mapping[id(n)] = m
            g.nodes.append(m)
        g.outputs = [None if o is None else mapping[id(o)] for o in self.outputs]
        return g

    def replace_uses(self, old: Node, new: Node) -> None:
        """Every read of ``old`` (by nodes and outputs) reads ``new`` instead."""
        for n in self.nodes:
            n.inputs = [new if i is old else i for i in n.inputs]
        self.outputs = [new if o is old else o for o in self.outputs]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def count(self, op: str) -> int:
        return sum(n.op == op for n in self.nodes)

    def format(self) -> str:
        """One line per node: ``v3 = add(v1, v2) [64,128] float32``, then the outputs."""
        lines = [f"graph {self.name} ({len(self.nodes)} nodes)"]
        for n in self.nodes:
            ins = ", ".join(i.name for i in n.inputs)
            attrs = ", ".join(f"{k}={_short(v)}" for k, v in n.attrs.items())
            call = ", ".join(x for x in (ins, attrs) if x)
            if n.op == "input":
                call = f"#{n.value}"
            elif n.op == "variable":
                call = repr(n.value.name)
            meta = ""
            if n.shape is not None:
                meta = f"  [{','.join(map(str, n.shape))}] {str(n.dtype).replace('torch.', '')}"
            lines.append(f"  {n.name} = {n.op}({call}){meta}{'  !' if n.impure else ''}")
        lines.append("  return " + ", ".join("-" if o is None else o.name for o in self.outputs))
        return "\n".join(lines)


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text of ``graph``: one box per node (op, shape), edges from inputs."""
    lines = [f'digraph "{graph.name}" {{', "  node [shape=box, fontname=monospace];"]
    for n in graph.nodes:
        if n.op == "free":
            continue
        shape = "" if n.shape is None else " [" + ",".join(map(str, n.shape)) + "]"
        label = n.value.name if n.op == "variable" else n.op
        style = ", style=filled, fillcolor=lightyellow" if n.impure else ""
        lines.append(f'  {n.name} [label="{n.name} = {label}{shape}"{style}];')
        lines.extend(f"  {i.name} -> {n.name};" for i in n.inputs)
    lines.extend(f'  {o.name} -> out{k}; out{k} [shape=ellipse, label="output {k}"];'
                 for k, o in enumerate(graph.outputs) if o is not None)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _short(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"<tensor {list(v.shape)}>"
    text = repr(v).replace("torch.", "")
    return text if len(text) <= 40 else text[:37] + "..."
