"""Graph mode: trace Python functions of Tensors into an IR, optimise it, replay it.

``tc.function`` (:mod:`.function`) traces (:mod:`.tracer`) into the IR (:mod:`.ir`),
applies the passes (:mod:`.passes`) and turns the graph into straight-line Python calling
torch kernels (:mod:`.codegen`). The training loop's ``execution: graph`` traces its
whole step with it (``trainctl.train.graph_step``).
"""

from trainctl.compile.codegen import compile_graph, generate
from trainctl.compile import inductor  # noqa: F401  (registers the "inductor" pass)
from trainctl.compile.function import ConcreteFunction, Function, RetracingWarning, function, trace
from trainctl.compile.ir import Graph, Node, Ref
from trainctl.compile.optimizer import AdamFused, OptimizerStep
from trainctl.compile.passes import DEFAULT_PASSES, PASSES, run_passes
from trainctl.compile.tracer import GraphTraceError, effect

__all__ = ["function", "Function", "ConcreteFunction", "RetracingWarning", "trace", "Graph",
           "Node", "Ref", "PASSES", "DEFAULT_PASSES", "run_passes", "compile_graph", "generate",
           "GraphTraceError", "effect", "OptimizerStep", "AdamFused"]
