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
import inspect
from typing import Callable

import torch

from trainctl.autodiff import engine
from trainctl.autodiff.engine import Node
from trainctl.autodiff.tensor import Tensor, to_torch
from trainctl.errors import DTypeError, ShapeError, fmt_shape  # noqa: F401 (re-exported)
from trainctl.registry import Registry

OPS: Registry["Op"] = Registry("op")


class Op:
    """A registered primitive: ``forward`` on torch tensors plus ``vjp`` on Tensors.

    ``differentiable=False`` ops (comparisons, argmax) are never recorded.
    ``broadcasting=True`` ops follow numpy broadcasting; operands that do not broadcast
    raise ShapeError naming the op and both shapes. Floating operands of different dtypes
    are promoted to one dtype with torch's rules (``torch.result_type``: float16 with
    float32 gives float32, float16 with bfloat16 float32, a 0-d operand takes the dtype of
    an operand with dimensions); the node keeps the original inputs, and the engine casts
    each gradient back to its input's dtype. The first ``inputs`` positional parameters of ``forward`` are tensor
    inputs (all of them for broadcasting and ``*xs`` ops, else 1); the later ones are
    attributes and may be passed positionally too (``ops.sum(x, 1)``, ``x[0]``).
    """

    __slots__ = ("name", "forward", "vjp", "differentiable", "broadcasting", "n_inputs",
                 "attr_names", "variadic", "__dict__")

    def __init__(self, name: str, forward: Callable, differentiable: bool, broadcasting: bool,
                 inputs: int | None = None):
        params = inspect.signature(forward).parameters.values()
        positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        if inputs is None:
            inputs = len(positional) if broadcasting or varargs else 1
        self.variadic = varargs
        self.n_inputs = inputs
        self.attr_names = tuple(positional[inputs:])
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
        # The hot path of every op (eager steps call ~30 per batch): Tensor inputs of one
        # dtype and device go straight to the kernel; anything else takes the slow helpers.
        if len(inputs) > self.n_inputs or self.variadic:
            if self.variadic and len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
                inputs = tuple(inputs[0])  # concat([a, b]) as TensorFlow and numpy write it
            if self.attr_names and len(inputs) > self.n_inputs:
                inputs, attrs = inputs[:self.n_inputs], _bind_attrs(self, inputs[self.n_inputs:],
                                                                     attrs)
        tensors = inputs
        for x in inputs:
            if x.__class__ is not Tensor and not isinstance(x, Tensor):
                tensors = _as_tensors(self.name, inputs)
                break
        args = [t.data for t in tensors]
        if len(args) > 1:
            args = _promote_operands(self.name, args)
        state = engine._state
        try:
            if state.tracer is None:
                out = self.forward(*args, **attrs)
            else:  # tracing a graph (trainctl.compile): record the call as one node
                out = state.tracer.run_op(self, tensors, args, attrs)
        except RecursionError:
            raise
        except RuntimeError as exc:
            if self.broadcasting:
                _check_broadcast(self.name, args)
            raise ShapeError(f"{self.name}: {exc}".split("\n")[0]) from None
        if self.differentiable and state.grad_enabled:
            tracked = state.tracked
            for t in tensors:
                if t._node is not None or t.trainable or id(t) in tracked:
                    return Tensor(out, Node(self, tuple(tensors), attrs))
        return Tensor(out)

    def __get__(self, obj, objtype=None):
        """Bind like a function, so an op can be installed as a Tensor method."""
        return self if obj is None else functools.partial(self, obj)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def defop(name: str, differentiable: bool = True, broadcasting: bool = False,
          inputs: int | None = None) -> Callable[[Callable], Op]:
    """Register a forward function as op ``name``; attach its rule with ``@op.defvjp``.

    ``inputs``: how many leading positional parameters are tensors (see :class:`Op`).
    """

    def deco(forward: Callable) -> Op:
        op = Op(name, forward, differentiable, broadcasting, inputs)
        OPS.register(name)(op)
        return op

    return deco


def _as_tensors(name: str, inputs) -> list[Tensor]:
    """Inputs as Tensors; Python numbers take the dtype and device of a tensor operand
    (the first floating one, so ``where(cond, x, 0.0)`` follows x, not the bool cond)."""
    given = [x for x in inputs if isinstance(x, Tensor)]
    like = next((x for x in given if x.dtype.is_floating_point), given[0] if given else None)
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
                t = to_torch(x, device=like.device if like is not None else None)
                if like is not None and like.dtype.is_floating_point and t.dtype.is_floating_point:
                    t = t.to(like.dtype)  # array-likes follow the tensor operand, as numbers do
                out.append(Tensor(t))
            except TypeError as exc:
                raise DTypeError(f"{name}: {exc}") from None
    return out


def _bind_attrs(op: Op, extra: tuple, attrs: dict) -> dict:
    """Attributes passed positionally after the tensor inputs, merged into ``attrs``."""
    if len(extra) > len(op.attr_names):
        raise TypeError(f"{op.name}: takes {op.n_inputs} tensor input(s) and attributes "
                        f"{', '.join(op.attr_names)}; got {op.n_inputs + len(extra)} "
                        f"positional arguments")
    attrs = dict(attrs)
    for key, value in zip(op.attr_names, extra):
        if key in attrs:
            raise TypeError(f"{op.name}: got multiple values for {key!r}")
        attrs[key] = value
    return attrs


def _promote_operands(name: str, args: list) -> list:
    """Floating operands cast to their torch-promoted dtype; all operands on one device.

    torch's rule (``torch.result_type``) among floating operands: the dtypes of operands
    with at least one dimension promote with ``torch.promote_types``; 0-d operands count
    only when no operand has a dimension. Integer and bool operands keep their dtype
    (indices, conditions, labels); mixing them with floats in arithmetic is left to the
    torch kernel, which gives the float. Raises DTypeError for operands on different devices.
    """
    first = args[0]
    dtype, device = first.dtype, first.device
    if len(args) == 2:  # the common case, kept cheap: most ops with several inputs pass here
        second = args[1]
        if second.dtype is dtype and second.device == device:
            return args
    elif all(a.dtype is dtype for a in args) and all(a.device == device for a in args):
        return args
    dims = zero_d = None
    for a in args:
        if a.device != first.device:
            raise DTypeError(f"{name}: operands are on different devices: {first.device} "
                             f"and {a.device}")
        if a.dtype.is_floating_point:
            if a.dim():
                dims = a.dtype if dims is None else torch.promote_types(dims, a.dtype)
            else:
                zero_d = a.dtype if zero_d is None else torch.promote_types(zero_d, a.dtype)
    common = dims if dims is not None else zero_d
    if common is None or all(a.dtype == common or not a.dtype.is_floating_point for a in args):
        return args
    return [a.to(common) if a.dtype.is_floating_point and a.dtype != common else a for a in args]


@functools.lru_cache(maxsize=4096)
def broadcast_shape(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape numpy broadcasting gives ``shapes`` (tuples or torch.Size), or None when
    they do not broadcast (a negative size never does). Same rule as
    ``torch.broadcast_shapes``, which runs as Python in torch 2.13 (``torch._refs``) and
    costs ~10 µs; this one is cached, as a training step meets the same shapes each time."""
    out = [1] * max((len(s) for s in shapes), default=0)
    for s in shapes:
        offset = len(out) - len(s)
        for i, d in enumerate(s):
            o = out[offset + i]
            if d < 0:
                return None
            if d != o and d != 1:
                if o != 1:
                    return None
                out[offset + i] = d
    return tuple(out)


def _check_broadcast(name: str, args) -> None:
    if broadcast_shape(*[tuple(a.shape) for a in args]) is None:
        shapes = " with ".join(fmt_shape(a.shape) for a in args)
        raise ShapeError(f"{name}: cannot broadcast {shapes}")
