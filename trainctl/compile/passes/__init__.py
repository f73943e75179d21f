"""Graph passes: each a pure function ``Graph -> Graph`` registered by name in
:data:`PASSES` (the input graph is never changed; a pass works on ``graph.copy()``).

Impure nodes (in-place updates, random draws, effects) are never removed, merged or
moved, so every pass keeps the program's side effects and their order.
"""

from __future__ import annotations

from typing import Callable, Sequence

from trainctl.compile.ir import Graph
from trainctl.registry import Registry

PASSES: Registry[Callable[[Graph], Graph]] = Registry("graph pass")

from trainctl.compile.passes import (  # noqa: E402,F401
    algebra, buffers, cleanup, elementwise, fuse, liveness, optimizer, reuse, xent)

# The order used by tc.function and graph execution; liveness must come last.
DEFAULT_PASSES = ("constant_folding", "algebraic_simplification", "cse", "dce", "fuse_addmm",
                  "fuse_softmax_xent", "fuse_elementwise", "foreach_optimizer", "dce",
                  "buffer_reuse", "persistent_buffers", "liveness")


def run_passes(graph: Graph, names: Sequence[str]) -> Graph:
    """Apply the passes ``names`` in order (UnknownNameError for an unknown name)."""
    for name in names:
        graph = PASSES.get(name)(graph)
    return graph


def pass_names() -> list[str]:
    return PASSES.names()
