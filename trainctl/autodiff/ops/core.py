"""How an op is defined: one forward on torch tensors, one VJP on our Tensors, side by side.

    @defop("mul", broadcasting=True)
    def mul(a, b):                      # torch tensors in, torch tensor out
        return torch.mul(a, b)

    @mul.defvjp
    def mul_vjp(g, out, a, b):          # Tensors: upstream grad, output, inputs (+ attrs)
        return g * b, g * a             # one gradient (or None) per input

Positional arguments are the op's tensor inputs; keyword arguments are attributes
(axis, keepdims, shape, ...), stored on the tape node and passed to the VJP. The engine
reduces a rule's gradient to its input's shape, so rules never unbroadcast.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch

from trainctl.autodiff import engine
from trainctl.autodiff.engine import Node
from trainctl.autodiff.tensor import Tensor, to_torch
from trainctl.errors import DTypeError, ShapeError
from trainctl.registry import Registry

OPS: Registry["Op"] = Registry("op")


def fmt_shape(shape) -> str:
    """[3,4] for a shape, as used in every error message."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


class Op:
    """A registered primitive: ``forward`` on torch tensors plus ``vjp`` on Tensors.

    ``differentiable=False`` ops (comparisons, argmax) are never recorded.
    ``broadcasting=True`` ops follow numpy broadcasting; operands that do not broadcast
    raise ShapeError naming the op and both shapes; two floating dtypes that differ raise
    DTypeError.
    """

    __slots__ = ("name", "forward", "vjp", "differentiable", "broadcasting", "__dict__")

    def __init__(self, name: str, forward: Callable, differentiable: bool, broadcasting: bool):
        self.name = name
        self.forward = forward
        self.vjp: Callable | None = None
        self.differentiable = differentiable
        self.broadcasting = broadcasting
        self.__doc__ = forward.__doc__
        self.__wrapped__ = forward

    def defvjp(self, rule: Callable) -> Callable:
        """Attach the vector-Jacobian rule ``rule(g, out, *inputs, **attrs) -> grads``."""
        self.vjp = rule
        return rule

    def __call__(self, *inputs, **attrs) -> Tensor:
        tensors = _as_tensors(self.name, inputs)
        args = [t.data for t in tensors]
        if self.broadcasting and len(args) > 1:
            _check_binary(self.name, args)
        try:
            out = self.forward(*args, **attrs)
        except RecursionError:
            raise
        except RuntimeError as exc:
            if self.broadcasting:
                _check_broadcast(self.name, args)
            raise ShapeError(f"{self.name}: {exc}".split("\n")[0]) from None
        if self.differentiable and engine._state.grad_enabled:
            for t in tensors:
                if t._node is not None or t._watched or getattr(t, "trainable", False):
                    return Tensor(out, Node(self, tuple(tensors), attrs))
        return Tensor(out)

    def __get__(self, obj, objtype=None):
        """Bind like a function, so an op can be installed as a Tensor method."""
        return self if obj is None else functools.partial(self, obj)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def defop(name: str, differentiable: bool = True, broadcasting: bool = False) -> Callable[[Callable], Op]:
    """Register a forward function as op ``name``; attach its rule with ``@op.defvjp``."""

    def deco(forward: Callable) -> Op:
        op = Op(name, forward, differentiable, broadcasting)
        OPS.register(name)(op)
        return op

    return deco


def _as_tensors(name: str, inputs) -> list[Tensor]:
    """Inputs as Tensors; Python numbers take the dtype and device of a tensor operand."""
    like = next((x for x in inputs if isinstance(x, Tensor)), None)
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(x)
        elif like is not None and isinstance(x, (int, float, bool)):
            float_like = like.dtype.is_floating_point
            dtype = like.dtype if (float_like or not isinstance(x, float)) else torch.float32
            out.append(Tensor(torch.tensor(x, dtype=dtype, device=like.device)))
        else:
            try:
                out.append(Tensor(to_torch(x, device=like.device if like is not None else None)))
            except TypeError as exc:
                raise DTypeError(f"{name}: {exc}") from None
    return out


def _check_binary(name: str, args) -> None:
    a, b = args[0], args[1]
    if a.dtype != b.dtype and a.dtype.is_floating_point and b.dtype.is_floating_point:
        raise DTypeError(f"{name}: dtypes differ: {str(a.dtype)[6:]} and {str(b.dtype)[6:]}; "
                         f"cast one with tc.ops.cast")
    if a.device != b.device:
        raise DTypeError(f"{name}: operands are on different devices: {a.device} and {b.device}")


def _check_broadcast(name: str, args) -> None:
    try:
        torch.broadcast_shapes(*[a.shape for a in args])
    except RuntimeError:
        shapes = " with ".join(fmt_shape(a.shape) for a in args)
        raise ShapeError(f"{name}: cannot broadcast {shapes}") from None
