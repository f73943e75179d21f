"""``graph: {compiler: inductor}``: fused elementwise nodes compiled by torch.compile.

The ``inductor`` pass (run after ``fuse_elementwise``) gives each ``fused_elementwise``
node a :class:`CompiledKernel`: the node's chain in its pure form (one fresh tensor per
step: see :class:`~trainctl.compile.passes.elementwise.FusedKernel`) handed to
``torch.compile(backend="inductor", fullgraph=True, dynamic=False)``, which merges its
kernels into one loop (C++ from a C compiler on CPU, Triton on CUDA). Compilation is lazy
(the first run of the node) and cached by torch on disk between processes.

Inductor needs a working C++ toolchain. :func:`inductor_available` compiles a tiny
function once per process to find out; where it fails (or a node's compilation fails
later) one :class:`CompilerWarning` says why and the nodes run uncompiled, with the
same results.
"""

from __future__ import annotations

import functools
import warnings

import torch

from trainctl.compile.ir import Graph
from trainctl.compile.passes import PASSES
from trainctl.compile.passes.elementwise import FusedKernel


class CompilerWarning(UserWarning):
    """torch.compile could not compile on this machine: the graph runs uncompiled."""


_WARNED: list[str] = []


def _warn_once(reason: str) -> None:
    if not _WARNED:
        _WARNED.append(reason)
        warnings.warn(f"graph: compiler: inductor does not work here ({reason}); the fused "
                      f"nodes run uncompiled (same results, without inductor's speed)",
                      CompilerWarning, stacklevel=3)


@functools.cache
def inductor_available() -> str | None:
    """None when torch.compile with inductor compiles and runs a small function on the
    CPU in this process; otherwise the reason (first line of the error)."""
    try:
        fn = torch.compile(lambda x: torch.tanh(x) * 2.0 + 1.0, backend="inductor",
                           fullgraph=True, dynamic=False)
        x = torch.linspace(-1, 1, 8)
        if not torch.allclose(fn(x), torch.tanh(x) * 2.0 + 1.0):
            return "a test function gave wrong values"
    except Exception as exc:  # any toolchain failure: no compiler, no headers...
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc) else ''}"
    return None


class CompiledKernel:
    """A fused node's callable: ``kernel.pure`` compiled by inductor on its first call;
    if that fails, one warning, then ``kernel`` (in place, uncompiled) from then on."""

    def __init__(self, kernel: FusedKernel):
        self.kernel = kernel
        self.__name__ = "inductor_" + kernel.__name__
        self._compiled = torch.compile(kernel.pure, backend="inductor", fullgraph=True,
                                       dynamic=False)
        self.failed: str | None = None

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.failed is None:
            try:
                return self._compiled(*inputs)
            except Exception as exc:  # compilation failed for this chain
                self.failed = f"{type(exc).__name__}: {str(exc)[:200]}"
                _warn_once(self.failed)
        return self.kernel(*inputs)

    def __repr__(self) -> str:
        return f"inductor({self.kernel!r})"


@PASSES.register("inductor")
def compile_fused(graph: Graph) -> Graph:
    """Each ``fused_elementwise`` node runs its chain compiled by torch.compile's inductor
    (see the module docstring); where inductor does not work, one CompilerWarning and the
    graph is returned unchanged. Values agree with the uncompiled chain to rounding
    (inductor may reorder or vectorise differently)."""
    g = graph.copy()
    nodes = [n for n in g.nodes if n.op == "fused_elementwise" and isinstance(n.fn, FusedKernel)]
    if not nodes:
        return g
    reason = inductor_available()
    if reason is not None:
        _warn_once(reason)
        return g
    for n in nodes:
        n.fn = CompiledKernel(n.fn)
    return g
