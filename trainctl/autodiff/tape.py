"""GradientTape, named and behaving as TensorFlow's.

Inside ``with tc.GradientTape() as tape:`` every op on a trainable Variable (or on a tensor
passed to ``tape.watch``) is recorded; ``tape.gradient(target, sources)`` returns the
gradients, following only the ops this tape recorded while it was open.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch

from trainctl.autodiff import engine
from trainctl.autodiff.tensor import Tensor

_UNCONNECTED = ("none", "zero")


class GradientTape:
    """Record ops for differentiation (TensorFlow's ``tf.GradientTape``).

    - ``watch(t)``: ops on the constant ``t`` are recorded while this tape is active, and
      only on this tape (another tape that did not watch ``t`` does not follow them).
      Trainable Variables are watched automatically unless
      ``watch_accessed_variables=False``.
    - ``persistent=False`` (default): one ``gradient``/``jacobian``/``batch_jacobian`` call;
      a second raises RuntimeError, and the recorded graph is released as the reverse pass
      runs (saved tensors are freed at once). ``persistent=True``: any number of calls; the
      graph is kept until the tape is deleted.
    - Sources may be a Tensor, a list/tuple or a dict of Tensors, intermediate tensors
      included; the result has the same structure, with None for unconnected sources
      (``unconnected_gradients='zero'`` gives zeros instead).
    - Calling ``gradient`` while another tape is recording records the reverse pass on it,
      so nested tapes give higher-order gradients.
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self.persistent = persistent
        self.watch_accessed_variables = watch_accessed_variables
        self._start: int | None = None
        self._end: float = engine.INF
        self._used = False
        self._recording = False
        self._watched: dict[int, tuple[Tensor, int]] = {}  # id -> (tensor, watch time)
        self._targets: dict[int, weakref.ref] = {}  # asked-about targets (persistent tapes)
        self._prev_grad = True  # grad_enabled before __enter__, restored by __exit__

    # ---- recording ----------------------------------------------------------------------
    def __enter__(self) -> "GradientTape":
        if self._recording:
            raise RuntimeError("GradientTape: this tape is already recording")
        if self._start is None:
            self._start = engine.current_id()
        self._end = engine.INF
        state = engine._state
        self._prev_grad, state.grad_enabled = state.grad_enabled, True  # enable_grad, inlined
        self._recording = True
        state.active_tapes.append(self)
        if self._watched:
            engine.track(t for t, _ in self._watched.values())
        engine.register_tape(self)
        return self

    def __exit__(self, *exc) -> None:
        self._end = engine.current_id()
        engine._state.grad_enabled = self._prev_grad  # as before __enter__
        self._recording = False
        if self._watched:
            engine.untrack(t for t, _ in self._watched.values())
        active = engine._state.active_tapes
        if self in active:
            active.remove(self)
        if self._used and not self.persistent:
            self._watched.clear()

    def watch(self, tensor: Any) -> None:
        """Record ops on ``tensor`` (a Tensor, or a list/tuple/dict of them) from now on,
        while this tape is active. Integer and bool tensors are accepted (as TensorFlow
        does) but have no gradient: asking for one raises DTypeError."""
        for t in _flatten(tensor, "watch")[1]:
            if id(t) not in self._watched:
                self._watched[id(t)] = (t, engine.current_id())
                if self._recording:
                    engine.track([t])

    def _range(self) -> tuple[int, float] | None:
        """Node ids this tape may still follow (None once it can compute nothing more)."""
        if self._start is None or (self._used and not self.persistent):
            return None
        return self._start, self._end

    def _begin(self, what: str, unconnected_gradients: str) -> None:
        if self._start is None:
            raise RuntimeError(f"GradientTape.{what} called on a tape that was never entered")
        if self._used and not self.persistent:
            raise RuntimeError(f"GradientTape.{what} can only be called once on a "
                               f"non-persistent tape (use GradientTape(persistent=True))")
        if unconnected_gradients not in _UNCONNECTED:
            raise ValueError("unconnected_gradients must be 'none' or 'zero'")
        self._used = True
        if not self.persistent:
            engine.unregister_tape(self)  # its _range() is None from now on

    def _plan(self, targets: list) -> engine.Plan:
        if self.persistent:
            for t in targets:
                self._targets.setdefault(id(t), weakref.ref(t))
        watched = {i: when for i, (_, when) in self._watched.items()}
        return engine.Plan(targets, self._start, self._end, watched,
                           self.watch_accessed_variables)

    def _create_graph(self) -> bool:
        return any(t is not self for t in engine._state.active_tapes)

    def _finish(self, targets: list) -> None:
        if not self.persistent:
            engine.release_graph(targets, self._start, self._end, exclude=self)
            if not self._recording:
                self._watched.clear()

    # ---- gradients ----------------------------------------------------------------------
    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = "none", ready: Any = None) -> Any:
        """d(target)/d(sources), structured like ``sources``.

        ``target``: a Tensor or a list of Tensors (gradients of their sum). A non-scalar
        target is summed unless ``output_gradients`` (same shape(s) as the target(s)) gives
        the cotangent: the result is then the vector-Jacobian product. ``ready(i, grad)``
        (optional) is called during the pass as soon as the gradient of the i-th flattened
        source is final (trainctl.train.distributed starts its all-reduce there).
        Raises RuntimeError when called twice on a non-persistent tape or before the tape
        was entered; ValueError for an unknown ``unconnected_gradients``; DTypeError for an
        integer or bool target or source (``gradient: cannot differentiate with respect to
        an int64 tensor``); ShapeError when an output gradient's shape differs.
        """
        self._begin("gradient", unconnected_gradients)
        targets = _flatten(target, "gradient target")[1]
        if output_gradients is not None and not isinstance(target, (list, tuple)):
            output_gradients = [output_gradients]
        elif output_gradients is not None and len(output_gradients) != len(targets):
            raise ValueError(f"gradient: {len(output_gradients)} output gradients for "
                             f"{len(targets)} targets")
        keys, flat = _flatten(sources, "gradient source")
        plan = self._plan(targets)
        grads = engine.run(plan, flat, output_gradients, self._create_graph(),
                           release=not self.persistent, ready=ready)
        self._finish(targets)
        if unconnected_gradients == "zero":
            from trainctl.autodiff import ops
            grads = [ops.zeros_like(s) if g is None else g for s, g in zip(flat, grads)]
        return _restructure(sources, keys, grads)

    def jacobian(self, target: Tensor, sources: Any, unconnected_gradients: str = "none") -> Any:
        """The full Jacobian of ``target`` with respect to each source, shaped
        ``target.shape + source.shape`` (TensorFlow's layout); one reverse pass per element
        of ``target``. Unconnected sources give None (or zeros with 'zero')."""
        from trainctl.autodiff import ops

        self._begin("jacobian", unconnected_gradients)
        keys, flat = _flatten(sources, "jacobian source")
        plan, n = self._plan([target]), target.size
        rows: list[list] = [[] for _ in flat]
        for k in range(n):
            basis = torch.zeros(n, dtype=target.dtype, device=target.device)
            basis[k] = 1
            grads = engine.run(plan, flat, [Tensor(basis.reshape(target.shape))],
                               self._create_graph())
            for r, g in zip(rows, grads):
                r.append(g)
        self._finish([target])
        out = []
        for s, r in zip(flat, rows):
            shape = target.shape + s.shape
            if all(g is None for g in r):
                out.append(None if unconnected_gradients == "none" else
                           Tensor(torch.zeros(shape, dtype=s.dtype, device=s.device)))
                continue
            r = [ops.zeros_like(s) if g is None else g for g in r]
            out.append(ops.reshape(ops.stack(r), shape))
        return _restructure(sources, keys, out)

    def batch_jacobian(self, target: Tensor, source: Tensor,
                       unconnected_gradients: str = "none") -> Tensor | None:
        """Per-example Jacobians: for target [b, *t] and source [b, *s], the result
        [b, *t, *s] holds d target[i, ...] / d source[i, ...] (TensorFlow's
        ``batch_jacobian``; example i of the target must depend only on example i of the
        source). Raises ValueError when the first dimensions differ or a rank is 0."""
        from trainctl.autodiff import ops

        self._begin("batch_jacobian", unconnected_gradients)
        _flatten(source, "batch_jacobian source")
        if target.ndim < 1 or source.ndim < 1 or target.shape[0] != source.shape[0]:
            raise ValueError(f"batch_jacobian: the first dimensions of target "
                             f"{ops.fmt_shape(target.shape)} and source "
                             f"{ops.fmt_shape(source.shape)} must match")
        b, rest = target.shape[0], target.shape[1:]
        m = math.prod(rest)
        plan, cols = self._plan([target]), []
        for j in range(m):
            basis = torch.zeros((b, m), dtype=target.dtype, device=target.device)
            basis[:, j] = 1
            cols.append(engine.run(plan, [source], [Tensor(basis.reshape(target.shape))],
                                   self._create_graph())[0])
        self._finish([target])
        shape = (b, *rest, *source.shape[1:])
        if all(g is None for g in cols):
            return None if unconnected_gradients == "none" else \
                Tensor(torch.zeros(shape, dtype=source.dtype, device=source.device))
        cols = [ops.zeros_like(source) if g is None else g for g in cols]
        if m == 0:
            return Tensor(torch.zeros(shape, dtype=source.dtype, device=source.device))
        return ops.reshape(ops.stack(cols, axis=1), shape)

    def __del__(self):
        # A persistent tape's graph lives until the tape goes: release what it was asked about.
        try:
            if self.persistent and self._targets:
                live = [t for t in (r() for r in self._targets.values()) if t is not None]
                engine.release_graph(live, self._start, self._end, exclude=self)
        except Exception:  # interpreter shutdown: nothing left to free
            pass


def _flatten(value: Any, what: str) -> tuple[list | None, list[Tensor]]:
    """(dict keys or None, the Tensors of a Tensor, list, tuple or dict)."""
    if isinstance(value, dict):
        keys, flat = list(value), list(value.values())
    elif isinstance(value, (list, tuple)):
        keys, flat = None, list(value)
    else:
        keys, flat = None, [value]
    for t in flat:
        if not isinstance(t, Tensor):
            raise TypeError(f"{what} must be a Tensor (or a list, tuple or dict of Tensors); "
                            f"got {type(t).__name__}")
    return keys, flat


def _restructure(sources: Any, keys: list | None, values: list) -> Any:
    if isinstance(sources, dict):
        return dict(zip(keys, values))
    if isinstance(sources, tuple):
        return tuple(values)
    if isinstance(sources, list):
        return values
    return values[0]
