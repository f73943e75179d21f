"""``tc.custom_gradient``: a user function with its own gradient (TensorFlow's semantics).

    @tc.custom_gradient
    def log1pexp(x):
        e = tc.ops.exp(x)
        def grad(upstream):
            return upstream * (1 - 1 / (1 + e))
        return tc.ops.log(1 + e), grad

The decorated function returns ``(y, grad_fn)``; ``grad_fn(upstream)`` returns the
gradients of the positional arguments. Each call records one node on the tape, from the
arguments (and the trainable Variables the function read) to ``y``; the ops inside the
function are reached only through ``grad_fn``, so when ``grad_fn`` is written with our ops
and uses tensors of the forward pass (``e`` above), nested tapes differentiate it again.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

from trainctl.autodiff import engine
from trainctl.autodiff.engine import Node
from trainctl.autodiff.ops.core import Op, fmt_shape
from trainctl.autodiff.tensor import Tensor, Variable, to_torch
from trainctl.errors import ShapeError


def _custom_forward(*xs):
    """Never called: a custom node's value is computed by the user's function."""
    raise RuntimeError("custom_gradient nodes are made by tc.custom_gradient only")


# Not registered in OPS: it is not one primitive but one node kind for every user function.
CUSTOM = Op("custom_gradient", _custom_forward, differentiable=True, broadcasting=False)


def custom_gradient(f: Callable) -> Callable:
    """Decorate ``f(*args, **kwargs) -> (y, grad_fn)`` so that the gradient of ``y`` is
    ``grad_fn``'s (TensorFlow's ``tf.custom_gradient``).

    - ``y``: one Tensor (several outputs are not supported: TypeError).
    - ``grad_fn(upstream)``: ``upstream`` has y's shape and dtype; it returns one gradient
      per positional argument of ``f`` (a Tensor of that argument's shape, a number, or
      None; a single value when ``f`` has one argument). Gradients of arguments that are
      not Tensors are ignored; keyword arguments are not differentiated.
    - Variables: when ``f`` reads trainable Variables that are not arguments, ``grad_fn``
      must accept the keyword ``variables`` (the list of those Variables, in order of first
      use) and return ``(argument_gradients, variable_gradients)``, as in TensorFlow.
    Errors: TypeError for a malformed return; ValueError when ``grad_fn`` returns the wrong
    number of gradients; ShapeError when a gradient's shape differs from its input's.
    """

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return _call(f, args, kwargs)

    return wrapper


def _call(f: Callable, args: tuple, kwargs: dict) -> Tensor:
    name = getattr(f, "__name__", "function")
    start = engine.current_id()
    result = f(*args, **kwargs)
    if not (isinstance(result, (tuple, list)) and len(result) == 2 and callable(result[1])):
        raise TypeError(f"custom_gradient: {name} must return (output, grad_fn); "
                        f"got {type(result).__name__}")
    y, grad_fn = result
    if not isinstance(y, Tensor):
        raise TypeError(f"custom_gradient: the output of {name} must be one Tensor; got "
                        f"{type(y).__name__} (several outputs are not supported)")
    positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
    inputs = [args[i] for i in positions]
    variables = _variables_read(y, start, {id(t) for t in inputs})
    if variables and not _accepts_variables(grad_fn):
        raise TypeError(f"custom_gradient: {name} reads Variables "
                        f"{[v.name for v in variables]}, so its grad_fn must accept the "
                        f"keyword argument 'variables' (TensorFlow's rule)")
    state = engine._state
    if state.grad_enabled and any(t._node is not None or t.trainable or id(t) in state.tracked
                                  for t in inputs + variables):
        attrs = {"grad_fn": grad_fn, "fn_name": name, "positions": positions,
                 "n_args": len(args), "n_variables": len(variables)}
        return Tensor(y.data, Node(CUSTOM, tuple(inputs + variables), attrs))
    return Tensor(y.data)


def _variables_read(y: Tensor, start: int, exclude: set) -> list[Variable]:
    """Trainable Variables (other than the arguments) on the nodes ``f`` recorded."""
    found, seen, stack = [], set(), [y]
    while stack:
        t = stack.pop()
        node = t._node
        if node is None or id(t) in seen or node.id <= start or node.attrs is None:
            continue
        seen.add(id(t))
        for inp in node.inputs:
            if isinstance(inp, Variable) and inp.trainable and id(inp) not in exclude:
                exclude.add(id(inp))
                found.append(inp)
        stack.extend(reversed(node.inputs))
    return found


def _accepts_variables(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "variables" or p.kind == p.VAR_KEYWORD for p in params)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


@CUSTOM.defvjp
def custom_vjp(g, out, *inputs, grad_fn, fn_name, positions, n_args, n_variables):
    if n_variables:
        variables = list(inputs[len(inputs) - n_variables:])
        arg_grads, var_grads = grad_fn(g, variables=variables)
        var_grads = _as_list(var_grads)
    else:
        arg_grads, var_grads = grad_fn(g), []
    arg_grads = _as_list(arg_grads)
    if len(arg_grads) != n_args or len(var_grads) != n_variables:
        raise ValueError(f"custom_gradient: grad_fn of {fn_name} returned {len(arg_grads)} "
                         f"gradient(s) for {n_args} argument(s)"
                         + (f" and {len(var_grads)} for {n_variables} variable(s)"
                            if n_variables else ""))
    grads = [arg_grads[i] for i in positions] + var_grads
    labels = [f"argument {i}" for i in positions] + [f"variable {v.name!r}"
                                                      for v in inputs[len(positions):]]
    return [_checked(gr, inp, fn_name, label) for gr, inp, label in zip(grads, inputs, labels)]


def _checked(grad, inp: Tensor, fn_name: str, label: str) -> Tensor | None:
    if grad is None:
        return None
    if not isinstance(grad, Tensor):  # a number or array-like, broadcast to the input
        value = to_torch(grad, dtype=inp.dtype, device=inp.device)
        if value.dim() <= inp.ndim:
            try:
                value = value.broadcast_to(inp.shape).contiguous()
            except RuntimeError:
                pass  # reported below with both shapes
        grad = Tensor(value)
    if grad.shape != inp.shape:
        raise ShapeError(f"custom_gradient: grad_fn of {fn_name} returned a gradient of shape "
                         f"{fmt_shape(grad.shape)} for {label} of shape {fmt_shape(inp.shape)}")
    return grad
