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

Both options only mean something in graph mode, so a ``graph:`` section in a spec file
that runs eagerly is an error; but when ``execution: eager`` comes from the command line
(``--execution eager``, ``--set execution=eager``) the override wins: the section is
ignored, with one :class:`GraphIgnoredWarning` (:func:`drop_graph_for_eager_override`).
docs/spec.md documents the semantics.
"""

from __future__ import annotations

import warnings
from typing import Literal

from trainctl.spec.config import Config
from trainctl.spec.doc import SpecDoc


class GraphIgnoredWarning(UserWarning):
    """A command-line ``execution`` other than ``graph`` made the spec's ``graph:`` section moot."""


def drop_graph_for_eager_override(doc: SpecDoc) -> SpecDoc:
    """``doc`` without its ``graph:`` section (and one GraphIgnoredWarning, located at that
    section) when an override sets ``execution`` to something other than ``graph``;
    otherwise ``doc`` itself, so the schema still rejects a file that says eager (or
    omits ``execution``) and has a ``graph:`` section."""
    execution = doc.get(("execution",))
    if "graph" not in doc.data or execution == "graph" or not doc.overridden(("execution",)):
        return doc
    where = doc.where(("graph",))
    warnings.warn_explicit(f"graph: ignored: {doc.where(('execution',)).file} runs the spec "
                           f"with execution: {execution}", GraphIgnoredWarning,
                           where.file, where.line or 0, module="trainctl.spec")
    return doc.without("graph")


class GraphConfig(Config):
    """Options of ``execution: graph`` (trainctl.train.graph_step applies them)."""

    compiler: Literal["none", "inductor"] = "none"
    cuda_graphs: bool = False
