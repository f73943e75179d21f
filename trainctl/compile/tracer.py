"""Tracing: run a Python function of Tensors once, for real, and record what it computes.

Tracing is by execution (as ``torch.jit.trace`` and TensorFlow's first ``tf.function``
call): the function runs eagerly on its real arguments and every computation is
recorded as a :class:`~trainctl.compile.ir.Node`:

- each call of a registered op (``Op.__call__`` hands it to :meth:`Tracer.run_op`) is one
  node named after the op, whatever torch calls its forward makes inside;
- every other torch call that reads a traced tensor, draws random numbers (dropout
  masks: replayed with the same generator, so each run draws fresh masks from the
  eager stream) or updates a tensor that existed before the trace in place (moving
  statistics) is one ``torch.<name>`` node, seen through a ``TorchFunctionMode``; the
  backward pass is recorded this way too, as the tape's rules are ops and torch calls;
- tensors made during the trace from no traced value (``torch.ones_like`` of a shape,
  ``torch.tensor(2.0)``) are constants; tensors that existed before the trace
  (weights, optimizer slots, statistics), and those made where torch dispatch does not
  see them (``torch.from_numpy``), are ``state``: read by reference at every run;
- :func:`effect` records an opaque, impure call (the optimizer update).

A torch call that turns a traced value into a Python value (``item``, ``bool``,
``tolist``, ``numpy``) would freeze a data-dependent decision into the graph: it raises
:class:`GraphTraceError` instead.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode

from trainctl.autodiff import engine
from trainctl.autodiff.tensor import Tensor, Variable
from trainctl.compile.ir import Graph, Node, Ref
from trainctl.errors import TrainctlError

# Calls that only read metadata: never recorded.
_METADATA = frozenset({
    "shape", "size", "dim", "ndim", "ndimension", "dtype", "device", "numel", "nelement",
    "is_floating_point", "is_complex", "is_contiguous", "stride", "data_ptr", "element_size",
    "layout", "requires_grad", "storage_offset", "__len__", "is_cuda", "is_cpu", "is_sparse",
    "is_leaf", "grad", "grad_fn", "_version", "names", "itemsize", "untyped_storage",
    "is_mkldnn", "is_quantized", "is_meta", "is_nested", "__hash__", "get_device", "_is_view",
    "is_inference", "nbytes", "is_mps", "is_xla", "_base", "__format__", "__repr__",
})
# Calls that draw random numbers (always recorded, never merged or folded).
_RANDOM = frozenset({
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
    "bernoulli", "bernoulli_", "normal", "normal_", "uniform_", "random_", "exponential_",
    "multinomial", "dropout", "dropout_", "geometric_", "cauchy_", "log_normal_",
})


class GraphTraceError(TrainctlError):
    """A traced function did something a graph cannot replay (a Python value read from a
    traced tensor, a traced tensor in an op attribute)."""


def func_name(func: Callable) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    if name == "__get__":  # a property of torch.Tensor (shape, T, data...)
        name = getattr(getattr(func, "__self__", None), "__name__", name)
    return name


def leaves(obj: Any):
    """The leaves of nested lists, tuples and dicts."""
    if isinstance(obj, (list, tuple)):
        for x in obj:
            yield from leaves(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from leaves(x)
    else:
        yield obj


def template(obj: Any, ref: Callable[[torch.Tensor], Ref]) -> Any:
    """``obj`` with every torch tensor replaced by ``ref(tensor)``."""
    if isinstance(obj, torch.Tensor):
        return ref(obj)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(template(x, ref) for x in obj)
    if isinstance(obj, dict):
        return {k: template(v, ref) for k, v in obj.items()}
    return obj


def _meta(t: Any) -> dict:
    if isinstance(t, torch.Tensor):
        return {"shape": tuple(t.shape), "dtype": t.dtype, "device": t.device}
    return {}


class Tracer(TorchFunctionMode):
    """Records into ``graph`` while active (see the module docstring).

    ``values`` maps id(torch tensor) to the node holding it; every tensor seen is kept
    alive in ``keep`` until the trace ends, so ids stay unique.
    """

    def __init__(self, graph: Graph, fn_name: str = "fn"):
        super().__init__()
        self.graph = graph
        self.fn_name = fn_name
        self.values: dict[int, Node] = {}
        self.fresh: set[int] = set()
        self.keep: list = []
        self.paused = 0

    # ---- values ------------------------------------------------------------------------
    def add_input(self, t: Tensor, index: int) -> None:
        node = self.graph.add("input", value=index, **_meta(t.data))
        self.values[id(t.data)] = node
        self.keep.append(t.data)

    def node_for(self, t: torch.Tensor, owner: Any = None) -> Node:
        """The node holding ``t``: a traced value, else a new variable, constant or state."""
        node = self.values.get(id(t))
        if node is not None:
            return node
        self.keep.append(t)
        if isinstance(owner, Variable) and owner.data is t:
            node = self.graph.add("variable", value=owner, **_meta(t))
        elif id(t) in self.fresh:
            node = self.graph.add("constant", value=t, **_meta(t))
        else:
            node = self.graph.add("state", value=t, **_meta(t))
        self.values[id(t)] = node
        return node

    def _refs(self, owners: Sequence = ()) -> tuple[list[Node], Callable]:
        inputs: list[Node] = []
        index: dict[int, int] = {}
        by_data = {id(o.data): o for o in owners if isinstance(o, Tensor)}

        def ref(t: torch.Tensor) -> Ref:
            if id(t) not in index:
                index[id(t)] = len(inputs)
                inputs.append(self.node_for(t, by_data.get(id(t))))
            return Ref(index[id(t)])
        return inputs, ref

    def _register(self, node: Node, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            self.values[id(out)] = node
            self.keep.append(out)
        elif isinstance(out, (list, tuple)):
            for i, t in enumerate(out):
                if isinstance(t, torch.Tensor):
                    sub = self.graph.add("getitem_out", [node], fn=operator.getitem,
                                         args=(Ref(0), i), **_meta(t))
                    self.values[id(t)] = sub
                    self.keep.append(t)

    # ---- ops and effects ---------------------------------------------------------------
    def run_op(self, op, tensors: Sequence[Tensor], args: Sequence[torch.Tensor],
               attrs: dict) -> torch.Tensor:
        """Run one registered op's forward and record it as one node."""
        self.paused += 1
        try:
            out = op.forward(*args, **attrs)
        finally:
            self.paused -= 1
        for leaf in leaves(attrs):
            t = leaf.data if isinstance(leaf, Tensor) else leaf
            if isinstance(t, torch.Tensor) and id(t) not in self.fresh:
                raise GraphTraceError(f"graph mode: op {op.name!r} takes a traced tensor as an "
                                      f"attribute while tracing {self.fn_name}; pass it as an "
                                      f"input")
        inputs, ref = self._refs(tensors)
        node = self.graph.add(op.name, inputs, fn=op.forward, args=tuple(ref(a) for a in args),
                              kwargs=dict(attrs), **_meta(out))
        self._register(node, out)
        return out

    def run_effect(self, name: str, fn: Callable, tensors: Sequence, attrs: dict) -> Any:
        datas = [None if t is None else t.data for t in tensors]
        self.paused += 1
        try:
            out = fn(*datas, **attrs)
        finally:
            self.paused -= 1
        inputs, ref = self._refs([t for t in tensors if t is not None])
        node = self.graph.add(name, inputs, fn=fn, args=template(tuple(datas), ref),
                              kwargs=dict(attrs), impure=True, **_meta(out))
        self._register(node, out)
        return out

    # ---- every other torch call ------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = func_name(func)
        out = func(*args, **kwargs)
        if name in _METADATA:
            return out
        tensors = [x for x in leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        traced = any(id(t) in self.values or id(t) not in self.fresh for t in tensors)
        inplace = (name.endswith("_") and not name.endswith("__")) or name.startswith("__i") \
            or name == "__setitem__" or "out" in kwargs
        random = name in _RANDOM or "generator" in kwargs
        if not (traced or random):  # a constant made during the trace
            for t in leaves(out):
                if isinstance(t, torch.Tensor):
                    self.fresh.add(id(t))
                    self.keep.append(t)
            return out
        result = (kwargs.get("out", args[0] if args else None)) if inplace else out
        if not all(isinstance(t, torch.Tensor) for t in leaves(result)):
            raise GraphTraceError(
                f"graph mode: {name}() reads the value of a traced tensor while tracing "
                f"{self.fn_name}; a graph cannot let tensor values steer Python code (compute "
                f"it with ops, or do it outside the traced function)")
        inputs, ref = self._refs()
        node = self.graph.add(f"torch.{name}", inputs, fn=func, args=template(tuple(args), ref),
                              kwargs=template(kwargs, ref), impure=inplace or random,
                              **_meta(result))
        self._register(node, result)
        return out


def active() -> Tracer | None:
    """The tracer recording now, if any."""
    return engine._state.tracer


def effect(name: str, fn: Callable, tensors: Sequence[Tensor | None], **attrs) -> Any:
    """Call ``fn(*torch tensors, **attrs)`` now; while tracing, also record it as one impure
    node ``name`` (replayed at every run with that run's tensors). None entries stay None."""
    tracer = engine._state.tracer
    if tracer is None:
        return fn(*[None if t is None else t.data for t in tensors], **attrs)
    return tracer.run_effect(name, fn, tensors, attrs)
