"""``tc.function``: trace a Python function of Tensors once per input signature, replay it.

TensorFlow's ``tf.function`` is the model. The signature of a call is the shape, dtype
and device of each Tensor argument, the identity of each Variable argument and the value
of every other (Python) argument, through nested lists, tuples and dicts. A call with a
new signature traces the function (runs it eagerly, recording a graph, see
:mod:`.tracer`), optimises the graph with the passes and compiles it (:mod:`.codegen`);
calls with a known signature run the compiled code. After ``max_traces`` traces a
:class:`RetracingWarning` says so, naming the signature that caused the last one.

Results are Tensors without tape history (a traced function is not differentiated
from outside; put the GradientTape inside it). Python values in the result are those of
the trace. A traced function called while another one is being traced is inlined.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Callable, Sequence

import torch

from trainctl.autodiff import engine
from trainctl.autodiff.tensor import Tensor, Variable
from trainctl.compile.codegen import compile_graph
from trainctl.compile.ir import Graph
from trainctl.compile.passes import DEFAULT_PASSES, run_passes
from trainctl.compile.tracer import Tracer, leaves

MAX_TRACES = 5  # TensorFlow warns after 5 retraces as well


class RetracingWarning(UserWarning):
    """A tc.function traced more often than ``max_traces``: each new input signature
    (shape, dtype, Python argument value) costs a trace."""


@dataclasses.dataclass
class ConcreteFunction:
    """One trace: the recorded ``graph``, the ``optimized`` one, its ``source`` and ``run``."""

    graph: Graph
    optimized: Graph
    source: str
    run: Callable
    tensor_count: int

    def __post_init__(self):
        self.rebuild = _rebuilder(self.graph.out_tree)


# Python argument types the fast key of a call takes by value (hashable, compared by ==).
_SCALARS = frozenset({bool, int, float, str, type(None)})


def _fast_key(args: tuple) -> tuple | None:
    """The key of a call whose positional arguments are plain Tensors and Python scalars
    only (the common case): one item per argument, the torch shape, dtype and device of
    a Tensor, (type, value) of a scalar; None for any other argument (a Variable, a
    container...): such calls take the full :func:`_signature`."""
    key = []
    for a in args:
        t = type(a)
        if t is Tensor:
            d = a.data
            key.append((d.shape, d.dtype, d.device))
        elif t in _SCALARS:
            key.append((t, a))
        else:
            return None
    return tuple(key)


def _rebuilder(tree: Any) -> Callable[[Sequence], Any]:
    """``values -> result`` for the output structure ``tree``: a tuple of the outputs in
    order directly, anything else through :func:`_rebuild`."""
    if type(tree) is tuple and all(isinstance(x, _Slot) and x.index == i
                                   for i, x in enumerate(tree)):
        return lambda values: tuple([v if isinstance(v, Tensor) else Tensor(v) for v in values])
    return lambda values: _rebuild(tree, values)


def _signature(obj: Any, tensors: list) -> Any:
    if isinstance(obj, Variable):
        return ("V", id(obj))
    if isinstance(obj, Tensor):
        tensors.append(obj)
        return ("T", obj.shape, obj.dtype, obj.device)
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_signature(x, tensors) for x in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _signature(v, tensors)) for k, v in obj.items()))
    if isinstance(obj, torch.Tensor):
        raise TypeError("tc.function: pass trainctl Tensors, not torch tensors")
    try:
        hash(obj)
        return (type(obj), obj)
    except TypeError:
        return ("id", id(obj))


def _flatten_out(obj: Any, out: list) -> Any:
    """The result's structure with each Tensor replaced by its index in ``out``."""
    if isinstance(obj, Tensor):
        out.append(obj)
        return _Slot(len(out) - 1)
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_flatten_out(x, out) for x in obj)
    if isinstance(obj, dict):
        return {k: _flatten_out(v, out) for k, v in obj.items()}
    return obj


@dataclasses.dataclass(frozen=True)
class _Slot:
    index: int


def _rebuild(tree: Any, values: Sequence) -> Any:
    if isinstance(tree, _Slot):
        v = values[tree.index]
        return v if isinstance(v, Tensor) else Tensor(v)
    if isinstance(tree, (list, tuple)):
        return type(tree)(_rebuild(x, values) for x in tree)
    if isinstance(tree, dict):
        return {k: _rebuild(v, values) for k, v in tree.items()}
    return tree


class Function:
    """A Python function of Tensors, traced per input signature (see the module docstring).

    ``passes``: the names of the graph passes applied after tracing, in order (default
    :data:`~trainctl.compile.passes.DEFAULT_PASSES`; ``()`` replays the graph as traced).
    """

    def __init__(self, fn: Callable, passes: Sequence[str] | None = None,
                 max_traces: int = MAX_TRACES, name: str | None = None):
        self.fn = fn
        self.passes = tuple(DEFAULT_PASSES if passes is None else passes)
        self.max_traces = max_traces
        self.name = name or getattr(fn, "__qualname__", "fn")
        self.concrete: dict[Any, ConcreteFunction] = {}
        self._fast: dict[tuple, tuple[ConcreteFunction, list[int]]] = {}  # see _fast_key
        self.traces = 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if engine._state.tracer is not None:
            return self.fn(*args, **kwargs)  # inlined into the enclosing trace
        if not kwargs:  # the hot path: a known call of Tensors and scalars
            fast = _fast_key(args)
            hit = self._fast.get(fast) if fast is not None else None
            if hit is not None:
                entry, where = hit
                return entry.rebuild(entry.run([args[i].data for i in where]))
        tensors: list[Tensor] = []
        key = _signature((args, kwargs), tensors)
        entry = self.concrete.get(key)
        if entry is None:
            result = self._trace(key, args, kwargs, tensors)
            entry = self.concrete[key]
        else:
            result = entry.rebuild(entry.run([t.data for t in tensors]))
        if not kwargs and fast is not None:
            self._fast[fast] = (entry, [i for i, a in enumerate(args) if type(a) is Tensor])
        return result

    def trace(self, *args, **kwargs) -> ConcreteFunction:
        """The concrete function for these arguments (traced now if new: this runs the
        function once, with its side effects)."""
        tensors: list[Tensor] = []
        key = _signature((args, kwargs), tensors)
        if key not in self.concrete:
            self._trace(key, args, kwargs, tensors)
        return self.concrete[key]

    def _trace(self, key, args, kwargs, tensors: list[Tensor]):
        self.traces += 1
        if self.traces > self.max_traces:
            shapes = ", ".join(f"{list(t.shape)} {str(t.dtype).replace('torch.', '')}"
                               for t in tensors)
            warnings.warn(f"tc.function {self.name} was traced {self.traces} times; the last "
                          f"trace was for tensors ({shapes}); each new shape, dtype or Python "
                          f"argument value retraces", RetracingWarning, stacklevel=3)
        graph, result = trace(self.fn, args, kwargs, tensors, self.name)
        optimized = run_passes(graph, self.passes)
        run, source = compile_graph(optimized)
        self.concrete[key] = ConcreteFunction(graph, optimized, source, run, len(tensors))
        values: list = []
        _flatten_out(result, values)
        return _rebuild(graph.out_tree, [v.data for v in values])


def trace(fn: Callable, args: tuple, kwargs: dict, tensors: Sequence[Tensor],
          name: str = "fn") -> tuple[Graph, Any]:
    """Run ``fn(*args, **kwargs)`` once, recording a graph whose inputs are ``tensors``
    (the Tensor arguments, in signature order); returns (graph, the call's result)."""
    graph = Graph(name)
    tracer = Tracer(graph, name)
    for i, t in enumerate(tensors):
        tracer.add_input(t, i)
    state = engine._state
    state.tracer = tracer
    try:
        with tracer:
            result = fn(*args, **kwargs)
    finally:
        state.tracer = None
    found: list[Tensor] = []
    graph.out_tree = _flatten_out(result, found)
    graph.outputs = [tracer.node_for(t.data, t) for t in found]
    return graph, result


def function(fn: Callable | None = None, *, passes: Sequence[str] | None = None,
             max_traces: int = MAX_TRACES):
    """Decorator: ``@tc.function`` or ``@tc.function(passes=[...])`` makes a
    :class:`Function` (tf.function semantics, see :mod:`trainctl.compile.function`)."""
    if fn is None:
        return lambda f: Function(f, passes, max_traces)
    return Function(fn, passes, max_traces)


__all__ = ["Function", "ConcreteFunction", "RetracingWarning", "function", "trace", "leaves"]
