"""The tape and the reverse pass.

Every op applied to a tracked input (a trainable Variable, a watched tensor, or the output
of a recorded op) records a :class:`Node` on its output: the op, its inputs and attributes,
and a sequence number. :func:`gradients` walks the nodes reachable from a target in
reverse topological order and applies each op's vector-Jacobian rule. The engine, not the
rules, reduces each gradient back to its input's shape (undoing broadcasting) and dtype,
so no rule handles broadcasting.

Rules are written with our own ops, so with ``create_graph=True`` the reverse pass is
itself recorded and can be differentiated again (higher-order gradients).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from trainctl.autodiff.ops.core import Op
    from trainctl.autodiff.tensor import Tensor


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True


_state = _State()
_ids = itertools.count(1)


class Node:
    """How a tensor was made: ``op(*inputs, **attrs)``; ``id`` orders nodes in time."""

    __slots__ = ("op", "inputs", "attrs", "id")

    def __init__(self, op: "Op", inputs: tuple, attrs: dict):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.id = next(_ids)


def current_id() -> int:
    """The id the next recorded node will be greater than (used by GradientTape)."""
    return next(_ids)


def grad_enabled() -> bool:
    return _state.grad_enabled


@contextlib.contextmanager
def no_grad():
    """Context in which no op is recorded (evaluation, optimizer updates)."""
    prev = _state.grad_enabled
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = prev


@contextlib.contextmanager
def enable_grad():
    prev = _state.grad_enabled
    _state.grad_enabled = True
    try:
        yield
    finally:
        _state.grad_enabled = prev


def _topo_order(target: "Tensor", min_id: int, max_id: float) -> list:
    """Tensors with a node in [min_id, max_id) reachable from target, inputs before outputs."""
    order, seen = [], set()
    stack = [(target, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        node = t._node
        if id(t) in seen or node is None or not (min_id <= node.id < max_id):
            continue
        seen.add(id(t))
        stack.append((t, True))
        for inp in node.inputs:
            if inp._node is not None and id(inp) not in seen:
                stack.append((inp, False))
    return order


def gradients(target: "Tensor", sources: Iterable["Tensor"], output_gradient: "Tensor | None" = None,
              min_id: int = 0, max_id: float = float("inf"), create_graph: bool = False) -> list:
    """d(target)/d(source) for each source (None where a source is not connected).

    ``output_gradient`` defaults to ones (so a non-scalar target is summed, as in
    TensorFlow). Only nodes with ``min_id <= id < max_id`` are followed. Raises ShapeError
    when ``output_gradient`` does not have the target's shape.
    """
    from trainctl.autodiff import ops
    from trainctl.errors import ShapeError

    sources = list(sources)
    if output_gradient is None:
        g0 = ops.ones_like(target)
    else:
        g0 = output_gradient if hasattr(output_gradient, "data") else ops.constant_like(output_gradient, target)
        if g0.shape != target.shape:
            raise ShapeError(f"gradient: output gradient of shape {ops.fmt_shape(g0.shape)} does "
                             f"not match target shape {ops.fmt_shape(target.shape)}")
    wanted = {id(s) for s in sources}
    grads: dict[int, "Tensor"] = {id(target): g0}
    ctx = contextlib.nullcontext() if create_graph else no_grad()
    with ctx:
        for t in reversed(_topo_order(target, min_id, max_id)):
            g = grads.get(id(t)) if id(t) in wanted else grads.pop(id(t), None)
            if g is None:
                continue
            node = t._node
            in_grads = node.op.vjp(g, t, *node.inputs, **node.attrs)
            for inp, ig in zip(node.inputs, in_grads):
                if ig is None or not inp.tracked:
                    continue
                if ig.shape != inp.shape:
                    ig = ops.sum_to(ig, inp.shape)
                if ig.dtype != inp.dtype:
                    ig = ops.cast(ig, inp.dtype)
                prev = grads.get(id(inp))
                grads[id(inp)] = ig if prev is None else prev + ig
    return [grads.get(id(s)) for s in sources]


def backward(target: "Tensor", gradient: "Tensor | None" = None, create_graph: bool = False) -> None:
    """Accumulate gradients of ``target`` into ``.grad`` of the trainable Variables it uses.

    Raises ValueError if target has more than one element and no ``gradient`` is given.
    """
    from trainctl.autodiff.ops import fmt_shape
    from trainctl.autodiff.tensor import Variable

    if gradient is None and target.size != 1:
        raise ValueError(f"backward: target of shape {fmt_shape(target.shape)} is not a scalar; "
                         f"pass gradient= of the same shape")
    leaves, seen = [], set()
    for t in _topo_order(target, 0, float("inf")):
        for inp in t._node.inputs:
            if isinstance(inp, Variable) and inp.trainable and id(inp) not in seen:
                seen.add(id(inp))
                leaves.append(inp)
    if isinstance(target, Variable) and target.trainable and not leaves:
        leaves = [target]
    grads = gradients(target, leaves, gradient, create_graph=create_graph)
    for v, g in zip(leaves, grads):
        if g is None:
            continue
        v.grad = g if v.grad is None else v.grad + g
