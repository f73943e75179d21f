"""Graph execution of the training and evaluation steps (the spec's ``execution: graph``).

The whole training step (forward, loss, regularization penalty, the backward pass by the
tape's rules and the optimizer update) is one :func:`trainctl.compile.function`, traced
on the first batch of each input signature (a short last batch is a second signature)
and replayed afterwards; the evaluation step (forward and per-sample loss) is another.
With a non-finite guard (the ``nonfinite_guard`` callback, or the default one) the
update node first runs the guard's check on the loss and gradients of that run.
The spec's ``graph:`` section adds the ``inductor`` pass (``compiler: inductor``) or
replays the training step as a CUDA graph (``cuda_graphs: true``,
:mod:`trainctl.compile.cudagraphs`).
"""

from __future__ import annotations

import gc
from typing import Any

from trainctl.autodiff import GradientTape
from trainctl.autodiff.tensor import Tensor
from trainctl.compile import DEFAULT_PASSES, Function, OptimizerStep, effect
from trainctl.compile.cudagraphs import CudaGraphStep


class GraphSteps:
    """The traced step functions of one :class:`~trainctl.train.setup.Setup`."""

    def __init__(self, setup: Any):
        self.setup = setup
        self.guard: Any = None  # the trainer's non-finite guard, set before each step
        options = getattr(setup.spec, "graph", None)
        passes = step_passes(options)
        self.train = Function(self._train, passes=passes, name="train_step")
        self.eval = Function(self._eval, passes=passes, name="eval_step")
        self.cuda_graphs = bool(options is not None and options.cuda_graphs)
        self.captured: dict = {}  # signature -> CudaGraphStep (cuda_graphs: true)

    def _train(self, x: Tensor, y: Tensor, guarded: bool):
        s = self.setup
        with GradientTape() as tape:
            per_sample, loss, pred = s.training_loss(x, y)
        grads = tape.gradient(loss, s.model.trainable_variables)
        if guarded:  # the guard reads the values, at run time, inside the update node
            update = OptimizerStep(s.optimizer, x.shape[0], check=self._check, lead=3)
            effect("optimizer_update", update, [loss, x, y, *grads])
        else:
            effect("optimizer_update", OptimizerStep(s.optimizer, x.shape[0]), grads)
        return per_sample, pred

    def _check(self, loss, x, y, grads) -> bool:
        wrap = [None if g is None else Tensor(g) for g in grads]
        return self.guard.check(Tensor(loss), wrap, Tensor(x), Tensor(y))

    def _eval(self, x: Tensor, y: Tensor):
        pred = self.setup.model(x, training=False)
        return self.setup.loss(y, pred), pred

    def train_step(self, guard: Any, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One training step; (per-sample loss, predictions). ``guard``: the trainer's
        non-finite guard (checks loss and gradients before the update) or None."""
        self.guard = guard
        if self.cuda_graphs:
            out = self._replay(x, y, guard is not None)
        else:
            out = self.train(x, y, guard is not None)
        freeze_once()
        return out

    def _replay(self, x: Tensor, y: Tensor, guarded: bool) -> tuple[Tensor, Tensor]:
        key = (x.shape, x.dtype, y.shape, y.dtype, guarded)
        step = self.captured.get(key)
        if step is None:  # the first step of a signature is traced (and run) eagerly
            out = self.train(x, y, guarded)
            self.captured[key] = CudaGraphStep(self.train.trace(x, y, guarded).optimized)
            return out
        per_sample, pred = step([x.data, y.data])
        return Tensor(per_sample), Tensor(pred)


def step_passes(options: Any = None) -> tuple[str, ...]:
    """The passes of graph mode's steps: DEFAULT_PASSES, with ``inductor`` after
    ``fuse_elementwise`` when ``options`` (the spec's ``graph:``) says ``compiler: inductor``."""
    passes = list(DEFAULT_PASSES)
    if options is not None and options.compiler == "inductor":
        passes.insert(passes.index("fuse_elementwise") + 1, "inductor")
    return tuple(passes)


_FROZEN = []


def freeze_once() -> None:
    """Once per process, after set-up (graph mode: after the first traced step; eager: at
    the first step), move every object alive (model, data, graphs) out of the garbage
    collector's generations (``gc.freeze``), so its full collections do not walk them
    again and again during the step loop: no GC pauses from long-lived objects
    (tests/test_train_gc.py counts the collections of a step loop)."""
    if not _FROZEN:
        gc.collect()
        gc.freeze()
        _FROZEN.append(True)


def graph_steps(setup: Any) -> GraphSteps | None:
    """The setup's traced steps when its spec says ``execution: graph``, else None (also
    for a data-parallel replica: the gradient all-reduce is not traced, it trains eagerly)."""
    if getattr(setup.spec, "execution", "eager") != "graph" or getattr(setup, "world_size", 1) > 1:
        return None
    if setup.graph is None:
        setup.graph = GraphSteps(setup)
    return setup.graph


def traced_step(setup: Any, step: str = "train", after: str | None = None):
    """The graph of ``setup``'s training (or ``step="eval"``) step on its first training
    batch, after the passes that training runs (:func:`step_passes` of the spec's
    ``graph:`` section, so ``inductor`` with ``compiler: inductor``) up to and including
    ``after`` (None: all of them; ``"traced"``: none), and the Python generated from it.
    Tracing runs the step once, so the setup's weights change. Raises TrainctlError for
    an unknown pass name."""
    from trainctl.compile import compile_graph, run_passes
    from trainctl.errors import TrainctlError
    from trainctl.train.loop import to_tensors

    every = step_passes(getattr(setup.spec, "graph", None))
    names = ["traced", *dict.fromkeys(every)]
    if after is not None and after not in names:
        raise TrainctlError(f"--after: unknown pass {after!r}; the passes, in order: "
                            f"{', '.join(names)}")
    passes = every if after is None else \
        every[:0 if after == "traced" else every.index(after) + 1]
    x, y = to_tensors(next(iter(setup.splits.train)), setup.device)
    steps = GraphSteps(setup)
    fn, args = (steps.train, (x, y, False)) if step == "train" else (steps.eval, (x, y))
    graph = run_passes(fn.trace(*args).graph, passes)
    return graph, compile_graph(graph)[1]
