"""Where a non-finite value first appeared in a training step: our own tape can tell.

:func:`locate_nonfinite` runs one batch's forward and backward again, recording every op on
a persistent tape, and checks each op's output in the order it ran (forward), then each
gradient a backward rule produces in the order the reverse pass computes them (backward).
The first non-finite tensor names its op and the layer that recorded it (by the span of
node ids each layer's call took), e.g. ``forward: op 'matmul' of layer 'dense_1' (dense)
gave inf`` or ``backward: the gradient op 'sqrt' gives its input 0 is nan (layer 'act')``.

The caller restores the random generators to their state before the failing step, so the
re-run draws the same dropout masks, and restores them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainctl.autodiff import GradientTape, engine, no_grad, ops
from trainctl.autodiff.tensor import Tensor
from trainctl.graph.model import Model


@dataclass
class Finding:
    """The first non-finite value of a step. ``where``: ``input``, ``labels``,
    ``forward``, ``backward``, or ``none`` (the re-run was finite: the failure did not
    reproduce); ``op`` and ``layer`` when known; ``value``: ``nan`` or ``inf``."""

    where: str
    op: str | None = None
    layer: str | None = None
    value: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        if self.where == "none":
            return "the re-run of the batch was finite (the failure did not reproduce)"
        if self.where in ("input", "labels"):
            part = "features" if self.where == "input" else "labels"
            return f"the batch's {part} hold {self.value}"
        layer = f" of layer {self.layer}" if self.layer else ""
        if self.where == "forward":
            return f"forward: op {self.op!r}{layer} gave {self.value}{self.detail}"
        return f"backward: the gradient op {self.op!r}{layer} gives {self.detail} is {self.value}"


def nonfinite(t: torch.Tensor) -> str | None:
    """``"nan"``, ``"inf"`` or None (finite, or not a floating tensor)."""
    if not (t.dtype.is_floating_point or t.dtype.is_complex) or bool(torch.isfinite(t).all()):
        return None
    return "nan" if bool(torch.isnan(t).any()) else "inf"


class _Spans:
    """Which layer recorded a node: node id ranges [start, end) per layer call."""

    def __init__(self):
        self.rows: list[tuple[int, int, str]] = []

    def add(self, start: int, end: int, label: str) -> None:
        self.rows.append((start, end, label))

    def label(self, node_id: int) -> str | None:
        return next((lab for a, b, lab in self.rows if a <= node_id < b), None)


def _forward(setup, x: Tensor, y: Tensor, spans: _Spans) -> Tensor:
    """The mean loss of the batch in training mode, each layer's nodes noted in ``spans``."""
    model = setup.model
    chain = type(model).__call__ is Model.__call__
    h = x
    for layer in (model.layers if chain else [model]):
        start = engine.current_id()
        h = layer(h, training=True)
        label = (f"{layer.name!r} ({layer.registered_name})" if chain else "model")
        spans.add(start, engine.current_id(), label)
    start = engine.current_id()
    loss = ops.mean(setup.loss(y, h))
    spans.add(start, engine.current_id(), f"loss ({setup.loss.registered_name})")
    return loss


def locate_nonfinite(setup, x: Tensor, y: Tensor) -> Finding:
    """Re-run ``setup``'s training step on ``(x, y)`` without updating anything and return
    where the first non-finite value appears (see the module docstring)."""
    for where, t in (("input", x), ("labels", y)):
        bad = nonfinite(t.data)
        if bad:
            return Finding(where, value=bad)
    spans = _Spans()
    with GradientTape(persistent=True):
        loss = _forward(setup, x, y, spans)
    plan = engine.Plan([loss])
    for t in sorted(plan.order, key=lambda t: t._node.id):
        bad = nonfinite(t.data)
        if bad:
            return Finding("forward", t._node.op.name, spans.label(t._node.id), bad)
    return _backward(plan, loss, spans)


def _backward(plan: engine.Plan, loss: Tensor, spans: _Spans) -> Finding:
    """The reverse pass of ``plan``, checking every gradient a rule gives (and each sum of
    gradients flowing into one tensor)."""
    grads: dict[int, Any] = {id(loss): ops.ones_like(loss)}
    with no_grad():
        for t in reversed(plan.order):
            g = grads.pop(id(t), None)
            node = t._node
            if g is None:
                continue
            in_grads = node.op.vjp(g, t, *node.inputs, **node.attrs)
            for i, (inp, ig) in enumerate(zip(node.inputs, in_grads)):
                if ig is None or not inp.dtype.is_floating_point:
                    continue
                if ig.shape != inp.shape:
                    ig = ops.sum_to(ig, inp.shape)
                if ig.dtype != inp.dtype:
                    ig = ops.cast(ig, inp.dtype)
                prev = grads.get(id(inp))
                total = ig if prev is None else prev + ig
                bad = nonfinite(total.data)
                if bad:
                    what = f"its input {i}" if prev is None else f"its input {i} (summed)"
                    return Finding("backward", node.op.name, spans.label(node.id), bad, what)
                grads[id(inp)] = total
    return Finding("none")
