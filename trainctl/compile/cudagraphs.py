"""``graph: {cuda_graphs: true}``: the traced training step captured as one CUDA graph.

A CUDA graph records the kernels of one run and replays them with a single launch, so
the Python and launch overhead of a step goes. It replays fixed pointers and fixed
scalars, so :class:`CudaGraphStep` captures everything of the step but the optimizer
update: the update node reads the learning rate, schedule and step counts in Python at
every step (Adam's bias corrections change each step), so it runs after each replay on
the gradients the graph wrote into its static buffers (with ``adam_foreach``: a handful
of ``_foreach`` launches). A non-finite guard inside the update node reads values there,
as in uncaptured graph mode.

The first ``warmup`` calls run the step uncaptured on a side stream (as torch's CUDA
graph recipe asks: lazily made state, cuBLAS workspaces); the next copies the batch into
static input buffers and captures; every later call copies the batch in and replays.
Random nodes replay fresh draws: their generators are registered with the graph, which
advances their offset at each replay. If a weight's tensor is replaced (not updated in
place: a checkpoint restored, best weights restored) the step is captured again.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from trainctl.compile.codegen import compile_graph
from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.optimizer import OptimizerStep
from trainctl.compile.tracer import GraphTraceError


def split_update(graph: Graph) -> tuple[Graph, Node | None]:
    """(the graph without its optimizer update node, whose outputs are the graph's outputs
    followed by the update's inputs; the update node, or None). Raises GraphTraceError
    when anything but freeing follows the update (it could not run after a replay)."""
    g = graph.copy()
    at = next((k for k, n in enumerate(g.nodes) if isinstance(n.fn, OptimizerStep)), None)
    if at is None:
        return g, None
    update = g.nodes[at]
    rest = [n for n in g.nodes[at + 1:] if n.op != "free"]
    if rest:
        raise GraphTraceError(f"graph: cuda_graphs: the traced step computes {rest[0].op} "
                              f"after its optimizer update; it cannot be captured")
    g.nodes = g.nodes[:at]
    g.outputs = [*g.outputs, *update.inputs]
    return g, update


class CudaGraphStep:
    """``run(list of input tensors) -> tuple of outputs`` of ``graph`` (a traced,
    optimised training step) by CUDA-graph replay; see the module docstring. Outputs
    are copies (the next replay overwrites the static ones)."""

    def __init__(self, graph: Graph, warmup: int = 2):
        self.body_graph, self.update = split_update(graph)
        self.body: Callable = compile_graph(self.body_graph)[0]
        self.n_out = len(graph.outputs)
        self.warmup = warmup
        self.calls = 0
        self.captures = 0
        self.cuda_graph: Any = None
        self.static_in: list[torch.Tensor] = []
        self.static_out: tuple = ()
        self._weights: list = []

    def _variables(self) -> list:
        return [n.value.data for n in self.body_graph.nodes if n.op == "variable"]

    def _generators(self) -> list:
        gens = []
        for n in self.body_graph.nodes:
            gen = n.kwargs.get("generator") if n.impure else None
            if isinstance(gen, torch.Generator) and all(gen is not g for g in gens):
                gens.append(gen)
        return gens

    def _finish(self, outs: tuple) -> tuple:
        if self.update is not None:
            vals = dict(zip(map(id, self.update.inputs), outs[self.n_out:]))
            args = [vals[id(self.update.inputs[a.index])] if isinstance(a, Ref) else a
                    for a in self.update.args]
            self.update.fn(*args, **self.update.kwargs)
        return tuple(o.clone() if isinstance(o, torch.Tensor) else o for o in outs[:self.n_out])

    def _capture(self, inputs: list) -> None:
        self.static_in = [t.clone() for t in inputs]
        self.cuda_graph = torch.cuda.CUDAGraph()
        for gen in self._generators():  # fresh draws at each replay (torch >= 2.5)
            register = getattr(self.cuda_graph, "register_generator_state", None)
            if register is None:
                raise GraphTraceError("graph: cuda_graphs: this torch cannot replay random "
                                      "draws from trainctl's generator in a CUDA graph")
            register(gen)
        with torch.cuda.graph(self.cuda_graph):
            self.static_out = self.body(self.static_in)
        self._weights = self._variables()
        self.captures += 1

    def __call__(self, inputs: list) -> tuple:
        self.calls += 1
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                outs = self.body(inputs)
            torch.cuda.current_stream().wait_stream(side)
            return self._finish(outs)
        if self.cuda_graph is None or any(a is not b for a, b in
                                          zip(self._weights, self._variables())):
            self._capture(inputs)  # records the kernels without running them
        for static, t in zip(self.static_in, inputs):
            static.copy_(t)
        self.cuda_graph.replay()
        return self._finish(self.static_out)
