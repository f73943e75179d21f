"""GradientTape, named and behaving as TensorFlow's.

Inside ``with tc.GradientTape() as tape:`` every op on a trainable Variable (or on a tensor
passed to ``tape.watch``) is recorded; ``tape.gradient(target, sources)`` returns the
gradients, following only the ops recorded while the tape was open.
"""

from __future__ import annotations

from typing import Any

from trainctl.autodiff import engine
from trainctl.autodiff.tensor import Tensor


_active: list["GradientTape"] = []


class GradientTape:
    """Record ops for differentiation.

    ``persistent=False`` (default): ``gradient`` may be called once; a second call raises
    RuntimeError, as in TensorFlow. Sources may be a Tensor, a list/tuple or a dict of
    Tensors; the result has the same structure, with None for unconnected sources
    (``unconnected_gradients='zero'`` gives zeros instead). Calling ``gradient`` while
    another tape is recording records the reverse pass on it, so nested tapes give
    higher-order gradients (as in TensorFlow).
    """

    def __init__(self, persistent: bool = False):
        self.persistent = persistent
        self._start: int | None = None
        self._end: float = float("inf")
        self._used = False
        self._grad_ctx = None

    def __enter__(self) -> "GradientTape":
        self._start = engine.current_id()
        self._end = float("inf")
        self._grad_ctx = engine.enable_grad()
        self._grad_ctx.__enter__()
        _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        self._end = engine.current_id()
        self._grad_ctx.__exit__(*exc)
        if self in _active:
            _active.remove(self)

    def watch(self, tensor: Tensor | list | tuple) -> None:
        """Record ops on ``tensor`` (a constant) from now on."""
        for t in tensor if isinstance(tensor, (list, tuple)) else [tensor]:
            t._watched = True

    def gradient(self, target: Tensor, sources: Any, output_gradients: Tensor | None = None,
                 unconnected_gradients: str = "none") -> Any:
        """d(target)/d(sources), structured like ``sources``.

        Raises RuntimeError when called twice on a non-persistent tape or before the
        tape was entered; ValueError for an unknown ``unconnected_gradients``.
        """
        if self._start is None:
            raise RuntimeError("GradientTape.gradient called on a tape that was never entered")
        if self._used and not self.persistent:
            raise RuntimeError("GradientTape.gradient can only be called once on a "
                               "non-persistent tape (use GradientTape(persistent=True))")
        if unconnected_gradients not in ("none", "zero"):
            raise ValueError("unconnected_gradients must be 'none' or 'zero'")
        self._used = True
        if isinstance(sources, dict):
            keys, flat = list(sources), list(sources.values())
        elif isinstance(sources, (list, tuple)):
            keys, flat = None, list(sources)
        else:
            keys, flat = None, [sources]
        create_graph = any(t is not self for t in _active)
        grads = engine.gradients(target, flat, output_gradients, min_id=self._start,
                                 max_id=self._end, create_graph=create_graph)
        if unconnected_gradients == "zero":
            from trainctl.autodiff import ops
            grads = [ops.zeros_like(s) if g is None else g for s, g in zip(flat, grads)]
        if isinstance(sources, dict):
            return dict(zip(keys, grads))
        if isinstance(sources, (list, tuple)):
            return type(sources)(grads) if isinstance(sources, tuple) else grads
        return grads[0]
