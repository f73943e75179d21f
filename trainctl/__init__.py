"""trainctl: train neural networks from a YAML spec, on our own autodiff engine.

Public API::

    import trainctl as tc
    x = tc.tensor([[1.0, 2.0]]); w = tc.Variable([[0.5], [0.25]])
    with tc.GradientTape() as tape:
        y = tc.ops.sum(x @ w)
    tape.gradient(y, w)

    @tc.function            # traced once per input signature, then replayed as a graph
    def step(x): ...

The engine (and torch) is imported on first use of one of these names, so the spec
package and ``trainctl validate`` stay light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "GradientTape": "trainctl.autodiff", "Tensor": "trainctl.autodiff",
    "Variable": "trainctl.autodiff", "tensor": "trainctl.autodiff", "ops": "trainctl.autodiff",
    "no_grad": "trainctl.autodiff", "enable_grad": "trainctl.autodiff",
    "gradients": "trainctl.autodiff", "stop_gradient": "trainctl.autodiff",
    "custom_gradient": "trainctl.autodiff", "gradcheck": "trainctl.autodiff",
    "GradcheckError": "trainctl.autodiff", "manual_seed": "trainctl.backend",
    "TrainctlError": "trainctl.errors", "function": "trainctl.compile",
}

float16, bfloat16, float32, float64 = "float16", "bfloat16", "float32", "float64"
int32, int64 = "int32", "int64"

__all__ = [*_LAZY, "__version__", "float16", "bfloat16", "float32", "float64", "int32", "int64"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainctl' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
