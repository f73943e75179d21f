"""trainctl: train neural networks from a YAML spec, on our own autodiff engine.

Public API::

    import trainctl as tc
    x = tc.tensor([[1.0, 2.0]]); w = tc.Variable([[0.5], [0.25]])
    with tc.GradientTape() as tape:
        y = tc.ops.sum(x @ w)
    tape.gradient(y, w)
"""

__version__ = "0.1.0"

from trainctl.autodiff import (  # noqa: E402
    GradientTape, Tensor, Variable, enable_grad, gradients, no_grad, ops, tensor,
)
from trainctl.backend import manual_seed  # noqa: E402
from trainctl.errors import TrainctlError  # noqa: E402

float16, bfloat16, float32, float64 = "float16", "bfloat16", "float32", "float64"
int32, int64 = "int32", "int64"

__all__ = [
    "GradientTape", "Tensor", "Variable", "tensor", "ops", "no_grad", "enable_grad", "gradients",
    "manual_seed", "TrainctlError", "__version__",
]
