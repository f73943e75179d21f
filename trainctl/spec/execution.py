"""The ``graph:`` section of a spec: how graph execution (``execution: graph``) runs the
traced steps.

::

    execution: graph
    graph:
      compiler: none        # none | inductor: fused elementwise nodes compiled by
                            # torch.compile(backend="inductor") (a C++ compiler is needed;
                            # without one: one warning, and the nodes run uncompiled)
      cuda_graphs: false    # true: the training step (all but the optimizer update) is
                            # captured once as a CUDA graph and replayed (CUDA devices only)

Both options only mean something in graph mode, so a ``graph:`` section in a spec that
runs eagerly is an error. docs/spec.md documents the semantics.
"""

from __future__ import annotations

from typing import Literal

from trainctl.spec.config import Config


class GraphConfig(Config):
    """Options of ``execution: graph`` (trainctl.train.graph_step applies them)."""

    compiler: Literal["none", "inductor"] = "none"
    cuda_graphs: bool = False
