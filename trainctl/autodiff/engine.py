"""The tape and the reverse pass.

Every op applied to a tracked input (a trainable Variable, a tensor watched by an active
GradientTape, or the output of a recorded op) records a :class:`Node` on its output: the
op, its inputs and attributes, and a sequence number. :func:`gradients` walks the nodes
reachable from the targets in reverse topological order and applies each op's
vector-Jacobian rule. The engine, not the rules, reduces each gradient back to its input's
shape (undoing broadcasting) and dtype, so no rule handles broadcasting.

Rules are written with our own ops, so with ``create_graph=True`` the reverse pass is
itself recorded and can be differentiated again (higher-order gradients).

Memory: a reverse pass that may release (a non-persistent tape, ``Tensor.backward``
without ``retain_graph``) drops each node's inputs and attributes as soon as its rule has
run, unless another live tape can still follow that node; the tensors it saved are then
freed by reference counting, so a training step keeps nothing alive.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Iterable, Sequence

if TYPE_CHECKING:
    from trainctl.autodiff.ops.core import Op
    from trainctl.autodiff.tensor import Tensor


class _State(threading.local):
    def __init__(self):
        self.grad_enabled = True
        # id(tensor) -> count: watched by an active tape, or a source of a running reverse
        # pass. Ops on these tensors are recorded and rules see them as ``tracked``.
        self.tracked: dict[int, int] = {}
        self.active_tapes: list = []
        # The graph tracer recording op calls (trainctl.compile), None outside a trace.
        self.tracer = None


_state = _State()
_ids = itertools.count(1)
_live_tapes: "weakref.WeakSet" = weakref.WeakSet()  # tapes that may still follow nodes

INF = float("inf")


class Node:
    """How a tensor was made: ``op(*inputs, **attrs)``; ``id`` orders nodes in time.

    A released node (its reverse pass has run) keeps ``op`` and ``id`` but has no inputs
    and ``attrs`` is None.
    """

    __slots__ = ("op", "inputs", "attrs", "id")

    def __init__(self, op: "Op", inputs: tuple, attrs: dict):
        self.op = op
        self.inputs = inputs
        self.attrs = attrs
        self.id = next(_ids)

    @property
    def released(self) -> bool:
        return self.attrs is None

    def release(self) -> None:
        self.inputs = ()
        self.attrs = None


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


def track(tensors: Iterable["Tensor"]) -> None:
    """Mark tensors as tracked (recorded, and ``tracked`` in rules) until :func:`untrack`."""
    tracked = _state.tracked
    for t in tensors:
        tracked[id(t)] = tracked.get(id(t), 0) + 1


def untrack(tensors: Iterable["Tensor"]) -> None:
    tracked = _state.tracked
    for t in tensors:
        n = tracked.get(id(t), 0) - 1
        if n > 0:
            tracked[id(t)] = n
        else:
            tracked.pop(id(t), None)


def register_tape(tape) -> None:
    """A tape whose ``_range()`` protects its nodes from being released by other passes."""
    _live_tapes.add(tape)


def unregister_tape(tape) -> None:
    """A tape that can follow no node any more (a used non-persistent tape)."""
    _live_tapes.discard(tape)


def _kept_ranges(exclude=None) -> list[tuple[int, float]]:
    """[start, end) ranges of node ids that live tapes (other than ``exclude``) may follow."""
    if not _live_tapes:
        return []  # the common case: iterating a WeakSet costs more than this whole check
    out = []
    for tape in list(_live_tapes):
        if tape is not exclude:
            rng = tape._range()
            if rng is not None:
                out.append(rng)
    return out


def _check_float(what: str, t: "Tensor") -> None:
    """DTypeError for an integer or bool target or source (only floats have gradients)."""
    if not t.data.dtype.is_floating_point:
        from trainctl.errors import DTypeError

        name = str(t.dtype).replace("torch.", "")
        article = "an" if name[0] in "aeio" else "a"
        if what == "source":
            raise DTypeError(f"gradient: cannot differentiate with respect to {article} {name} "
                             f"tensor (only floating tensors have gradients)")
        raise DTypeError(f"gradient: cannot differentiate {article} {name} target (only "
                         f"floating tensors have gradients)")


# ---- planning: which tensors the reverse pass visits ----------------------------------
def _topo_order(targets: Sequence["Tensor"], min_id: int, max_id: float) -> tuple[list, list]:
    """(floating tensors with a node in [min_id, max_id) reachable from the targets, inputs
    before outputs; the names of released nodes met on the way)."""
    order, seen, freed = [], set(), []
    stack = [(t, False) for t in targets]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        node = t._node
        if id(t) in seen or node is None or not (min_id <= node.id < max_id):
            continue
        if not t.dtype.is_floating_point:
            continue  # no gradient flows through integer or bool values
        if node.attrs is None:
            freed.append(node.op.name)
            continue
        seen.add(id(t))
        stack.append((t, True))
        for inp in node.inputs:
            if inp._node is not None and id(inp) not in seen:
                stack.append((inp, False))
    return order, freed


def _on_tape(order: list, watched: dict, variables: bool) -> list:
    """The tensors of ``order`` whose node a tape with ``watched`` (id -> watch time)
    recorded: TensorFlow records an op on a tape when one of its inputs is a trainable
    Variable (if ``variables``), a tensor the tape watched before the op ran, or the output
    of an op recorded on that tape."""
    on, kept = set(), []
    for t in order:
        node = t._node
        for inp in node.inputs:
            i = id(inp)
            if (i in on or (variables and getattr(inp, "trainable", False))
                    or watched.get(i, INF) < node.id):
                on.add(id(t))
                kept.append(t)
                break
    return kept


class Plan:
    """The tensors one reverse pass visits, computed once and reusable (jacobian rows)."""

    __slots__ = ("targets", "order", "min_id", "max_id", "freed")

    def __init__(self, targets: Sequence["Tensor"], min_id: int = 0, max_id: float = INF,
                 watched: dict | None = None, variables: bool = True):
        for t in targets:
            _check_float("target", t)
        order, self.freed = _topo_order(targets, min_id, max_id)
        if watched is not None:
            order = _on_tape(order, watched, variables)
        self.targets, self.order = list(targets), order
        self.min_id, self.max_id = min_id, max_id


# ---- the reverse pass -----------------------------------------------------------------
def _seed(targets, output_gradients) -> dict:
    from trainctl.autodiff import ops
    from trainctl.errors import ShapeError

    grads: dict[int, "Tensor"] = {}
    for i, target in enumerate(targets):
        og = None if output_gradients is None else output_gradients[i]
        if og is None:
            g0 = ops.ones_like(target)
        else:
            g0 = og if hasattr(og, "data") else ops.constant_like(og, target)
            if g0.shape != target.shape:
                raise ShapeError(f"gradient: output gradient of shape {ops.fmt_shape(g0.shape)} "
                                 f"does not match target shape {ops.fmt_shape(target.shape)}")
            if g0.dtype != target.dtype:
                g0 = ops.cast(g0, target.dtype)
        prev = grads.get(id(target))
        grads[id(target)] = g0 if prev is None else prev + g0
    return grads


def run(plan: Plan, sources: Sequence["Tensor"], output_gradients=None,
        create_graph: bool = False, release: bool = False, keep=None, ready=None) -> list:
    """One reverse pass over ``plan``; d(targets)/d(source) per source (None if unconnected).

    ``release``: drop each node's inputs and attributes once its rule has run, except nodes
    whose id falls in a range of ``keep`` (other live tapes). A released plan cannot run again.
    ``ready(i, grad)``: called during the pass as soon as the gradient of ``sources[i]`` is
    final (the last node using that source has run), so data-parallel training can start
    reducing it while the rest of the pass runs; sources no node uses are not reported.
    """
    from trainctl.autodiff import ops

    for s in sources:
        _check_float("source", s)
    grads = _seed(plan.targets, output_gradients)
    if plan.freed:
        raise RuntimeError(
            f"gradient: the graph through op {plan.freed[0]!r} was freed by an earlier "
            f"reverse pass; use GradientTape(persistent=True) or backward(retain_graph=True) "
            f"to differentiate it again")
    wanted = {id(s) for s in sources}
    needed = wanted | {id(t) for t in plan.order}
    order = list(plan.order)
    last_use = _last_uses(order, sources) if ready is not None else {}
    if release:
        plan.order = []
        keep = _kept_ranges() if keep is None else keep
    track(sources)
    state, prev = _state, _state.grad_enabled
    state.grad_enabled = create_graph and prev  # rules record only if the pass is differentiated
    try:
        while order:
            t = order.pop()
            g = grads.get(id(t)) if id(t) in wanted else grads.pop(id(t), None)
            node = t._node
            if g is not None:
                _apply_rule(node, g, t, grads, needed, ops)
            if last_use:
                for i in last_use.pop(len(order), ()):
                    ready(i, grads.get(id(sources[i])))
            if release and (not keep or not any(a <= node.id < b for a, b in keep)):
                node.inputs, node.attrs = (), None  # Node.release, inlined (hot loop)
            del t, g, node
    finally:
        state.grad_enabled = prev
        untrack(sources)
    return [grads.get(id(s)) for s in sources]


def _last_uses(order: list, sources: Sequence["Tensor"]) -> dict[int, list[int]]:
    """Position in ``order`` of the node after whose rule each source's gradient is final
    (the earliest node using it: the pass runs ``order`` backwards) -> source indices."""
    index = {id(s): i for i, s in enumerate(sources)}
    first: dict[int, int] = {}
    for pos in range(len(order) - 1, -1, -1):
        for inp in order[pos]._node.inputs:
            i = index.get(id(inp))
            if i is not None:
                first[i] = pos
    out: dict[int, list[int]] = {}
    for i, pos in first.items():
        out.setdefault(pos, []).append(i)
    return out


def _apply_rule(node: Node, g: "Tensor", out: "Tensor", grads: dict, needed: set, ops) -> None:
    """Add the node's input gradients into ``grads``, reduced to each input's shape and dtype."""
    in_grads = node.op.vjp(g, out, *node.inputs, **node.attrs)
    for inp, ig in zip(node.inputs, in_grads):
        if ig is None or id(inp) not in needed:
            continue
        data, want = ig.data, inp.data
        if data.shape != want.shape:
            ig = ops.sum_to(ig, inp.shape)
        if data.dtype is not want.dtype:
            ig = ops.cast(ig, inp.dtype)
        prev = grads.get(id(inp))
        grads[id(inp)] = ig if prev is None else prev + ig


def release_graph(targets: Sequence["Tensor"], min_id: int = 0, max_id: float = INF,
                  exclude=None) -> None:
    """Release the nodes in [min_id, max_id) reachable from ``targets`` that no other live
    tape (than ``exclude``) may follow."""
    keep = _kept_ranges(exclude)
    seen, stack = set(), list(targets)
    while stack:
        t = stack.pop()
        node = t._node
        if node is None or id(t) in seen or node.attrs is None or not (min_id <= node.id < max_id):
            continue
        seen.add(id(t))
        stack.extend(node.inputs)
        if not any(a <= node.id < b for a, b in keep):
            node.release()


def gradients(target: "Tensor | Sequence[Tensor]", sources: Iterable["Tensor"],
              output_gradient=None, min_id: int = 0, max_id: float = INF,
              create_graph: bool = False, watched: dict | None = None,
              variables: bool = True, release: bool = False, keep=None) -> list:
    """d(target)/d(source) for each source (None where a source is not connected).

    ``target`` is a Tensor or a list of Tensors (their gradients add, as in TensorFlow);
    ``output_gradient`` (one per target) defaults to ones, so a non-scalar target is summed.
    Only nodes with ``min_id <= id < max_id`` are followed, and with ``watched`` (a tape's
    id -> watch time) only nodes that tape recorded. Raises ShapeError when an output
    gradient does not have its target's shape, DTypeError for an integer or bool target
    or source, RuntimeError when the graph was freed by an earlier pass.
    """
    multi = isinstance(target, (list, tuple))
    targets = list(target) if multi else [target]
    if output_gradient is not None and not multi:
        output_gradient = [output_gradient]
    plan = Plan(targets, min_id, max_id, watched, variables)
    return run(plan, list(sources), output_gradient, create_graph, release, keep)


def backward(target: "Tensor", gradient: "Tensor | None" = None, create_graph: bool = False,
             retain_graph: bool | None = None) -> None:
    """Accumulate gradients of ``target`` into ``.grad`` of the trainable Variables it uses.

    ``retain_graph`` defaults to ``create_graph`` (as in PyTorch); without it the graph is
    released as the pass runs (except nodes a live tape may still follow).
    Raises ValueError if target has more than one element and no ``gradient`` is given.
    """
    from trainctl.autodiff.ops import fmt_shape
    from trainctl.autodiff.tensor import Variable

    if gradient is None and target.size != 1:
        raise ValueError(f"backward: target of shape {fmt_shape(target.shape)} is not a scalar; "
                         f"pass gradient= of the same shape")
    plan = Plan([target])
    leaves, seen = [], set()
    for t in plan.order:
        for inp in t._node.inputs:
            if (isinstance(inp, Variable) and inp.trainable and inp.dtype.is_floating_point
                    and id(inp) not in seen):
                seen.add(id(inp))
                leaves.append(inp)
    if isinstance(target, Variable) and target.trainable and not leaves:
        leaves = [target]
    retain = create_graph if retain_graph is None else retain_graph
    grads = run(plan, leaves, None if gradient is None else [gradient], create_graph,
                release=not retain)
    for v, g in zip(leaves, grads):
        if g is None:
            continue
        v.grad = g if v.grad is None else v.grad + g
