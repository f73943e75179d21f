"""The op catalogue, by family. ``tc.ops.<name>`` and Tensor operators both land here.

Every differentiable primitive is registered in :data:`OPS` with its forward and VJP
side by side in its family's module; composed ops (mean, softmax, stack, matmul of 1-D
operands, ...) are plain functions of primitives and need no rule of their own.
"""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import OPS, Op, defop, fmt_shape
from trainctl.autodiff.ops.activations import (
    elu, erf, gelu, hard_sigmoid, leaky_relu, log_sigmoid, silu, softsign,
)
from trainctl.autodiff.ops.control import stop_gradient
from trainctl.autodiff.ops.conv import (
    conv1d, conv2d, conv2d_bias, conv2d_transpose, conv2d_weight_grad,
)
from trainctl.autodiff.ops.elementwise import (
    abs, add, cast, div, equal, exp, greater, greater_equal, less, less_equal, log, maximum,
    minimum, mul, neg, not_equal, pow, relu, relu_grad, sigmoid, sign, softplus, sqrt, sub,
    tanh, where,
)
from trainctl.autodiff.ops.einsum import einsum
from trainctl.autodiff.ops.indexing import (
    cumsum, embedding_lookup, flip, one_hot, pad, repeat, scatter_add, split, squeeze, tile,
    top_k, unsqueeze,
)
from trainctl.autodiff.ops.linalg import matmul, matmul_nd
from trainctl.autodiff.ops.movement import (
    broadcast_to, concat, expand_dims, flatten, getitem, getitem_adjoint, permute,
    put_along_axis_add, reshape, stack, swapaxes, take_along_axis, transpose,
)
from trainctl.autodiff.ops.nn import (
    log_softmax, log_softmax_backward, sigmoid_cross_entropy_with_logits, softmax,
)
from trainctl.autodiff.ops.normalization import (
    batch_norm, layer_norm, moments, rsqrt, std, variance,
)
from trainctl.autodiff.ops.pool import (
    avg_pool2d, fold2d, global_average_pool2d, global_max_pool2d, max_pool2d, max_pool2d_gather,
    max_pool2d_grad, unfold2d,
)
from trainctl.autodiff.ops.reduce import logsumexp, max, mean, min, sum, sum_to
from trainctl.autodiff.ops.rounding import ceil, clip, floor, round
from trainctl.autodiff.ops.window import same_padding
from trainctl.autodiff.tensor import Tensor, to_torch

gather = take_along_axis


def square(x: Tensor) -> Tensor:
    """x * x (composed)."""
    return mul(x, x)


@defop("argmax", differentiable=False)
def argmax(x, axis=-1):
    """Index of the largest value along ``axis`` (int64, no gradient; first of ties)."""
    return torch.argmax(x, dim=axis)


def zeros_like(x: Tensor) -> Tensor:
    """A constant of zeros with x's shape, dtype and device."""
    return Tensor(torch.zeros_like(x.data))


def ones_like(x: Tensor) -> Tensor:
    """A constant of ones with x's shape, dtype and device."""
    return Tensor(torch.ones_like(x.data))


def constant_like(value, like: Tensor) -> Tensor:
    """``value`` as a constant Tensor with ``like``'s dtype and device."""
    return Tensor(to_torch(value, dtype=like.dtype, device=like.device))


def _install_tensor_methods() -> None:
    """Tensor operators and methods, each one an op of this catalogue."""

    def rev(fn):
        def reflected(self, other):
            return fn(other, self)

        reflected.__name__ = f"r{fn.__name__}" if hasattr(fn, "__name__") else "reflected"
        return reflected

    table = {
        "__add__": add, "__radd__": rev(add), "__sub__": sub, "__rsub__": rev(sub),
        "__mul__": mul, "__rmul__": rev(mul), "__truediv__": div, "__rtruediv__": rev(div),
        "__pow__": pow, "__rpow__": rev(pow), "__matmul__": matmul, "__rmatmul__": rev(matmul),
        "__neg__": neg, "__abs__": abs, "__getitem__": getitem,
        "__lt__": less, "__le__": less_equal, "__gt__": greater, "__ge__": greater_equal,
        "sum": sum, "mean": mean, "max": max, "min": min, "exp": exp, "log": log,
        "sqrt": sqrt, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "reshape": _reshape_method,
        "transpose": transpose, "permute": _permute_method, "matmul": matmul,
        "softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp,
        "argmax": argmax, "cast": cast, "square": square, "broadcast_to": broadcast_to,
        "flip": flip, "squeeze": squeeze, "clip": clip, "cumsum": cumsum,
    }
    for name, fn in table.items():
        setattr(Tensor, name, fn)
    Tensor.T = property(transpose)


def _reshape_method(self, *shape):
    return reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


def _permute_method(self, *axes):
    return permute(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes)


_install_tensor_methods()

__all__ = [name for name in dir() if not name.startswith("_") and name not in ("annotations", "torch")]
