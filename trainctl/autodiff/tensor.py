"""Tensor and Variable: our values, wrapping ``torch.Tensor``.

A Tensor holds a torch tensor (``.data``, always ``requires_grad=False``: torch.autograd
is never used) and, when it was produced by a recorded op, the tape node that made it.
Operators and methods (``a + b``, ``a @ b``, ``a.sum(axis=1)``) are installed by
``trainctl.autodiff.ops`` from one table, so every method is an op of the catalogue.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from trainctl.autodiff import engine
from trainctl.backend import DEFAULT_FLOAT, as_dtype, resolve_device

_variable_ids = itertools.count()


def to_torch(data: Any, dtype=None, device=None) -> torch.Tensor:
    """Convert data (Tensor, torch tensor, numpy array, nested lists, scalars) to torch.

    Python/numpy floats become float32 unless ``dtype`` says otherwise (TensorFlow's rule),
    ints int64, bools bool. The result never requires grad.
    """
    dtype = as_dtype(dtype)
    if isinstance(data, Tensor):
        t = data.data
    elif isinstance(data, torch.Tensor):
        t = data.detach()
    else:
        try:
            arr = np.asarray(data)
        except ValueError as exc:  # a ragged nested list
            from trainctl.errors import ShapeError
            raise ShapeError(f"tensor: nested sequences of unequal lengths cannot form a tensor "
                             f"({str(exc).split(';')[0].split(' The')[0]})") from None
        if arr.dtype == np.float64 and dtype is None:
            dtype = DEFAULT_FLOAT
        if arr.dtype.kind in "OUS":
            raise TypeError(f"cannot make a tensor from {type(data).__name__} of {arr.dtype}")
        t = torch.from_numpy(arr if arr.flags.c_contiguous else arr.copy(order="C"))
    if device is not None:
        t = t.to(resolve_device(device))
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


class Tensor:
    """An immutable n-dimensional value with shape, dtype and device.

    ``data`` is the wrapped torch.Tensor. ``_node`` is the tape node that produced it
    (None for constants and leaves). A constant is recorded only while a GradientTape that
    watches it is active (TensorFlow's per-tape ``watch``).
    """

    __slots__ = ("data", "_node", "__weakref__")
    __array_priority__ = 1000  # numpy defers to our operators
    trainable = False  # only Variables are watched automatically

    def __init__(self, data: torch.Tensor, _node=None):
        self.data = data
        self._node = _node

    # ---- properties -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def ndim(self) -> int:
        return self.data.dim()

    @property
    def size(self) -> int:
        return self.data.numel()

    @property
    def tracked(self) -> bool:
        """True if gradients may flow to or through this tensor now: it was made by a
        recorded op, is watched by an active tape, or is a source of a running reverse pass."""
        return self._node is not None or id(self) in engine._state.tracked

    def __len__(self) -> int:
        if self.data.dim() == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        """The slices along axis 0 (each a recorded ``self[i]``), as numpy iterates."""
        for i in range(len(self)):
            yield self[i]

    # ---- conversion -------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A numpy copy of the value (moved to the CPU)."""
        return self.data.detach().cpu().numpy()

    def item(self) -> float | int | bool:
        """The Python number of a one-element tensor (a host-device sync on CUDA)."""
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same value with no tape history."""
        return Tensor(self.data)

    def to(self, device=None, dtype=None) -> "Tensor":
        """A copy on another device or with another dtype (no gradient across devices)."""
        return Tensor(to_torch(self, dtype=dtype, device=device))

    def __float__(self) -> float:
        return float(self.data.item())

    def __int__(self) -> int:
        return int(self.data.item())

    def __bool__(self) -> bool:
        if self.data.numel() != 1:
            raise ValueError(f"the truth value of a tensor of shape {list(self.shape)} is ambiguous")
        return bool(self.data.item())

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), precision=4, separator=", ", threshold=20)
        extra = f", device={self.device}" if self.device.type != "cpu" else ""
        return f"tc.Tensor({body}, dtype={str(self.dtype).replace('torch.', '')}{extra})"

    __hash__ = object.__hash__

    # ---- gradients --------------------------------------------------------------
    def backward(self, gradient: "Tensor | None" = None, create_graph: bool = False,
                 retain_graph: bool | None = None) -> None:
        """Accumulate d(self)/d(v) into ``v.grad`` for every trainable Variable v it depends on.

        ``self`` must have one element unless ``gradient`` (same shape as self) is given.
        Gradients add to an existing ``.grad`` (as in PyTorch); clear them with
        ``optimizer.zero_grad()`` or ``v.grad = None``. The graph is released as the pass
        runs unless ``retain_graph`` (default: ``create_graph``), as in PyTorch; a second
        pass through a released graph raises RuntimeError.
        Raises ValueError for a non-scalar target without ``gradient``, DTypeError for an
        integer or bool target.
        """
        engine.backward(self, gradient, create_graph=create_graph, retain_graph=retain_graph)


class Variable(Tensor):
    """A mutable tensor: model weights and optimizer slots.

    ``trainable`` variables are watched by every GradientTape automatically (as in
    TensorFlow) and receive ``.grad`` from :meth:`Tensor.backward`. Mutate only with
    :meth:`assign`, :meth:`assign_add` and :meth:`assign_sub` (in place, not recorded).
    """

    __slots__ = ("name", "trainable", "grad")

    def __init__(self, initial_value: Any, dtype=None, device=None, name: str | None = None,
                 trainable: bool = True):
        data = to_torch(initial_value, dtype=dtype, device=device).clone(
            memory_format=torch.contiguous_format)
        super().__init__(data)
        self.name = name if name is not None else f"variable_{next(_variable_ids)}"
        self.trainable = bool(trainable)
        self.grad: Tensor | None = None

    @property
    def tracked(self) -> bool:
        return self.trainable or id(self) in engine._state.tracked

    def assign(self, value: Any) -> "Variable":
        """Set the value in place; shape must match. Returns self."""
        src = to_torch(value, dtype=self.dtype, device=self.device)
        if tuple(src.shape) != self.shape:
            from trainctl.autodiff.ops.core import fmt_shape
            from trainctl.errors import ShapeError
            raise ShapeError(f"assign: cannot assign shape {fmt_shape(src.shape)} to variable "
                             f"{self.name!r} of shape {fmt_shape(self.shape)}")
        self.data.copy_(src)
        return self

    def assign_add(self, value: Any) -> "Variable":
        self.data.add_(to_torch(value, dtype=self.dtype, device=self.device))
        return self

    def assign_sub(self, value: Any) -> "Variable":
        self.data.sub_(to_torch(value, dtype=self.dtype, device=self.device))
        return self

    def __repr__(self) -> str:
        return f"tc.Variable({self.name!r}, shape={list(self.shape)}, " \
               f"dtype={str(self.dtype).replace('torch.', '')}, trainable={self.trainable})"


def tensor(data: Any, dtype=None, device=None) -> Tensor:
    """Make a constant Tensor from data (lists, numbers, numpy arrays, torch tensors, Tensors).

    Floats default to float32, ints to int64. ``device`` is a name (``cpu``, ``cuda:0``,
    ``auto``) or torch.device.
    """
    t = to_torch(data, dtype=dtype, device=device)
    if isinstance(data, (np.ndarray, torch.Tensor, Variable)) and t.data_ptr() == _data_ptr(data):
        t = t.clone()  # a Tensor never aliases memory the caller may still change
    return Tensor(t)


def _data_ptr(data) -> int:
    if isinstance(data, Variable):
        return data.data.data_ptr()
    if isinstance(data, torch.Tensor):
        return data.data_ptr()
    return data.__array_interface__["data"][0]
