"""Activation functions by name (the ``activation:`` of a layer), composed from ops."""

from __future__ import annotations

from typing import Callable

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor
from trainctl.registry import Registry
from trainctl.spec.kinds.names import check_activation  # noqa: F401  (the names live there, torch-free)

activations: Registry[Callable[[Tensor], Tensor]] = Registry("activation")


@activations.register("linear")
def linear(x: Tensor) -> Tensor:
    """Identity."""
    return x


@activations.register("relu")
def relu(x: Tensor) -> Tensor:
    """max(x, 0)."""
    return ops.relu(x)


@activations.register("sigmoid")
def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e^-x)."""
    return ops.sigmoid(x)


@activations.register("tanh")
def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return ops.tanh(x)


@activations.register("softplus")
def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x)."""
    return ops.softplus(x)


@activations.register("softmax")
def softmax(x: Tensor) -> Tensor:
    """Softmax over the last axis."""
    return ops.softmax(x, axis=-1)


@activations.register("log_softmax")
def log_softmax(x: Tensor) -> Tensor:
    """Log-softmax over the last axis."""
    return ops.log_softmax(x, axis=-1)


@activations.register("gelu")
def gelu(x: Tensor) -> Tensor:
    """Exact GELU x Φ(x) (Keras 3's default, approximate=False)."""
    return ops.gelu(x)


@activations.register("silu")
def silu(x: Tensor) -> Tensor:
    """x σ(x) (swish)."""
    return ops.silu(x)


@activations.register("elu")
def elu(x: Tensor) -> Tensor:
    """x for x > 0, e^x - 1 otherwise (alpha 1.0)."""
    return ops.elu(x)


@activations.register("leaky_relu")
def leaky_relu(x: Tensor) -> Tensor:
    """x for x > 0, 0.2 x otherwise (Keras 3's negative_slope 0.2; torch's default is 0.01)."""
    return ops.leaky_relu(x, alpha=0.2)


@activations.register("softsign")
def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return ops.softsign(x)


@activations.register("hard_sigmoid")
def hard_sigmoid(x: Tensor) -> Tensor:
    """relu6(x + 3) / 6 (Keras 3)."""
    return ops.hard_sigmoid(x)


@activations.register("log_sigmoid")
def log_sigmoid(x: Tensor) -> Tensor:
    """log σ(x) = -softplus(-x), exact for large |x|."""
    return ops.log_sigmoid(x)


