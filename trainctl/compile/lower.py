"""Lowering: ops whose forward is a Python function (shape checks, then one or two torch
calls) written in the generated code as those torch calls directly, with what depends
only on the traced shapes (axes, dims, index layouts) worked out once here.

Each rule takes a node and the code generator's namespace and returns the Python
expression of the node's value, or None when the node is not the case it handles (the
generic call of ``node.fn`` is written then). Every rule computes the same values as the
op's forward with the same kernels (tests/test_compile_lower.py checks each against the
unlowered code). Shapes and dtypes are fixed by the input signature, so a rule may rely
on those recorded while tracing.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from trainctl.compile.ir import Node, Ref

Rule = Callable[[Node, Any], "str | None"]


def _unary(node: Node) -> tuple[Node, dict] | None:
    """(the input, the attributes) of a node called as ``fn(x, **attrs)``."""
    if node.args != (Ref(0),) or len(node.inputs) != 1 or node.inputs[0].shape is None:
        return None
    return node.inputs[0], node.kwargs


def sum_to(node: Node, ns: Any) -> str | None:
    """``sum_to(x, shape)`` → ``torch.sum(x, dims)`` (leading axes only) or
    ``torch.sum(x, dims, True)`` (kept axes only), reshaped when it has both; the
    input itself when nothing is summed (as the op returns a view of it)."""
    un = _unary(node)
    if un is None or set(un[1]) != {"shape"}:
        return None
    (x, attrs), shape = un, tuple(un[1]["shape"])
    lead = len(x.shape) - len(shape)
    if lead < 0 or tuple(node.shape or ()) != shape:
        return None
    kept = tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    dims = tuple(range(lead)) + kept
    if not dims:
        return x.name if tuple(x.shape) == shape else f"{x.name}.reshape({shape!r})"
    if not kept:
        return f"torch.sum({x.name}, {dims!r})"
    if not lead:
        return f"torch.sum({x.name}, {dims!r}, True)"
    return f"torch.sum({x.name}, {dims!r}, True).reshape({shape!r})"


def permute(node: Node, ns: Any) -> str | None:
    """``permute(x, axes)`` → ``x.t()`` for a matrix transpose, else ``x.permute(axes)``
    with the axes made non-negative (the op's check passed while tracing)."""
    un = _unary(node)
    if un is None or set(un[1]) != {"axes"}:
        return None
    x, attrs = un
    nd = max(len(x.shape), 1)
    axes = tuple(int(a) % nd for a in attrs["axes"])
    if sorted(axes) != list(range(len(x.shape))):
        return None
    return f"{x.name}.t()" if axes == (1, 0) else f"{x.name}.permute({axes!r})"


def reshape(node: Node, ns: Any) -> str | None:
    """``reshape(x, shape)`` → ``x.reshape(traced shape)`` (the -1 resolved)."""
    un = _unary(node)
    if un is None or set(un[1]) != {"shape"} or node.shape is None:
        return None
    return f"{un[0].name}.reshape({tuple(node.shape)!r})"


def matmul_nd(node: Node, ns: Any) -> str | None:
    """``matmul_nd(a, b)`` of two matrices → ``torch.mm(a, b)`` (what torch.matmul
    calls for them; ``out=`` kept)."""
    if node.args != (Ref(0), Ref(1)) or set(node.kwargs) - {"out"}:
        return None
    a, b = node.inputs[:2]
    if len(a.shape or ()) != 2 or len(b.shape or ()) != 2:
        return None
    out = f", out={ns.literal(node.kwargs['out'], node)}" if node.kwargs else ""
    return f"torch.mm({a.name}, {b.name}{out})"


def log_softmax(node: Node, ns: Any) -> str | None:
    """``log_softmax(x, axis)`` → ``torch._log_softmax(x, dim, False)`` (the kernel
    torch.log_softmax calls for an input of its own dtype)."""
    un = _unary(node)
    if un is None or set(un[1]) - {"axis"}:
        return None
    x, attrs = un
    axis = attrs.get("axis", -1)
    if type(axis) is not int or not x.shape or x.dtype is None or \
            not x.dtype.is_floating_point or node.dtype != x.dtype:
        return None
    return f"torch._log_softmax({x.name}, {axis % len(x.shape)}, False)"


def log_softmax_backward(node: Node, ns: Any) -> str | None:
    """``log_softmax_backward(g, out, axis)`` (log_softmax's rule) →
    ``torch._log_softmax_backward_data(g, out, dim, dtype)``, the kernel its forward calls."""
    if node.args != (Ref(0), Ref(1)) or len(node.inputs) != 2 or set(node.kwargs) - {"axis"}:
        return None  # e.g. the fuse_softmax_xent pass's node, which calls the kernel itself
    g, out = node.inputs
    axis = node.kwargs.get("axis", -1)
    if type(axis) is not int or not out.shape or g.shape != out.shape or out.dtype is None \
            or g.dtype != out.dtype:
        return None
    return f"torch._log_softmax_backward_data({g.name}, {out.name}, " \
           f"{axis % len(out.shape)}, {out.dtype})"


def relu_grad(node: Node, ns: Any) -> str | None:
    """``relu_grad(g, y)`` (relu's rule) → ``torch.threshold_backward(g, y, 0)``, the
    kernel its forward calls, without the shape check."""
    if node.args != (Ref(0), Ref(1)) or len(node.inputs) != 2 or node.kwargs:
        return None
    g, y = node.inputs
    if g.shape is None or g.shape != y.shape:
        return None
    return f"{ns.name(torch.ops.aten.threshold_backward.default, 'K')}({g.name}, {y.name}, 0)"


def nll_loss(node: Node, ns: Any) -> str | None:
    """``F.nll_loss(logp, y, reduction='none')`` → ``torch._C._nn.nll_loss_nd(logp, y,
    None, 0, -100)``: the kernel it calls, without the Python argument handling."""
    import torch.nn.functional as F

    if node.fn is not F.nll_loss or node.args != (Ref(0), Ref(1)) or \
            node.kwargs != {"reduction": "none"}:
        return None
    logp, y = node.inputs
    return f"torch._C._nn.nll_loss_nd({logp.name}, {y.name}, None, 0, -100)"


def put_along_axis_add(node: Node, ns: Any) -> str | None:
    """``put_along_axis_add(g, idx, axis, shape)`` with int64 indices of g's shape →
    ``torch.scatter_add(Z, axis, idx, g)``, Z a zeros tensor of ``shape`` made once and
    never written (the out-of-place kernel copies it into its result): one call instead
    of allocating, zero-filling and scattering."""
    if node.args != (Ref(0), Ref(1)) or set(node.kwargs) != {"axis", "shape"}:
        return None
    g, idx = node.inputs
    shape = tuple(node.kwargs["shape"])
    if idx.dtype != torch.int64 or idx.shape != g.shape or g.shape is None or \
            len(g.shape) != len(shape) or g.device is None or g.dtype is None:
        return None
    zeros = torch.zeros(shape, dtype=g.dtype, device=g.device)
    return f"torch.scatter_add({ns.name(zeros, 'C')}, {node.kwargs['axis'] % len(shape)}, " \
           f"{idx.name}, {g.name})"


LOWERINGS: dict[str, Rule] = {
    "sum_to": sum_to, "permute": permute, "reshape": reshape, "matmul_nd": matmul_nd,
    "log_softmax": log_softmax, "log_softmax_backward": log_softmax_backward,
    "nll_loss": nll_loss, "relu_grad": relu_grad,
    "put_along_axis_add": put_along_axis_add,
}


def lower(node: Node, ns: Any) -> str | None:
    """The torch expression of ``node``'s value, or None (write the generic call)."""
    rule = LOWERINGS.get(node.op)
    return rule(node, ns) if rule is not None and not node.impure else None
