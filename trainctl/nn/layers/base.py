"""The Layer base class (Keras 3's life cycle).

A layer type derives from ``Layer`` and from its kind in :mod:`trainctl.spec.kinds.layers`
(``class Dense(Layer, kinds.Dense)``), which holds its ``Config`` (its validated options)
and its shape rule ``compute_output_shape(input_shape, config)``, both free of torch so that
``trainctl validate`` can use them. The layer creates its weights in :meth:`build` from the
input shape (batch axis excluded) and returns ``self.compute_output_shape(...)``, so a model's
shapes are inferred before any data flows; it computes in :meth:`call`. ``get_config()`` / ``from_config()`` round-trip through the YAML form.
"""

from __future__ import annotations

from typing import Any

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor, Variable
from trainctl.backend import DEFAULT_FLOAT
from trainctl.nn.initializers import make_initializer
from trainctl.registry import Registry
from trainctl.spec.kinds.layers import LayerConfig, LayerKind

layers: Registry[type["Layer"]] = Registry("layer type")


class Layer(LayerKind):
    """Base class of registered layers.

    Subclasses also derive from their kind (which gives ``Config`` and ``compute_output_shape``),
    implement ``build(input_shape) -> output_shape`` (shapes exclude the batch axis; the
    kind's rule raises trainctl.errors.ShapeError on a mismatch) and ``call(x, training)
    -> Tensor``.
    """

    def __init__(self, config: LayerConfig | None = None, name: str | None = None, **options: Any):
        self.config = config if config is not None else self.Config(**options)
        self.name = name or self.config.name or self.registered_name
        self.weights: list[Variable] = []
        self.regularized: list[tuple[Variable, Any]] = []  # (variable, Regularizer config)
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    # ---- life cycle -------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> tuple[int, ...]:
        """Create weights on ``device`` for ``input_shape``; return the output shape."""
        return self.compute_output_shape(tuple(input_shape), self.config)

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        raise NotImplementedError

    def __call__(self, x, training: bool = False) -> Tensor:
        """``call``; a multi-input layer given one tensor gets it as a one-item list (so
        multi_head_attention works inside a ``layers:`` chain)."""
        if self.multi_input() and isinstance(x, Tensor):
            x = [x]
        return self.call(x, training=training)

    def add_weight(self, name: str, shape: tuple[int, ...], initializer: Any,
                   device: torch.device | str = "cpu", dtype: torch.dtype = DEFAULT_FLOAT,
                   trainable: bool = True, regularizer: Any = None) -> Variable:
        """A new Variable named ``<layer>/<name>``, initialised by a registered initialiser
        (a name or an option mapping, see trainctl.spec.kinds.weights); ``regularizer``
        (a Regularizer config or None) adds its penalty to :meth:`regularization_loss`."""
        value = make_initializer(initializer)(tuple(shape), dtype, torch.device(device))
        var = Variable(value, name=f"{self.name}/{name}", trainable=trainable)
        self.weights.append(var)
        if regularizer is not None and (regularizer.l1 or regularizer.l2):
            self.regularized.append((var, regularizer))
        return var

    def regularization_loss(self) -> Tensor | None:
        """Σ over regularized weights of l1·Σ|w| + l2·Σw² (Keras' L1L2), a scalar Tensor on
        the tape; None when the layer has no regularizer."""
        total = None
        for var, reg in self.regularized:
            for coef, term in ((reg.l1, lambda w: ops.abs(w)), (reg.l2, lambda w: w * w)):
                if coef:
                    part = ops.sum(term(var)) * coef
                    total = part if total is None else total + part
        return total

    # ---- config round trip --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The YAML form: ``{'type': ..., **options}`` (defaults included); ``name`` is the
        layer's actual name (given or automatic), so ``from_config`` keeps weight names."""
        return {"type": self.registered_name, **self.config.model_dump(mode="json"),
                "name": self.name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Layer":
        """Rebuild from :meth:`get_config`'s output (``type`` is ignored if present)."""
        options = {k: v for k, v in config.items() if k != "type"}
        return cls(cls.Config(**options))

    @property
    def trainable_weights(self) -> list[Variable]:
        return [w for w in self.weights if w.trainable]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.input_shape} -> {self.output_shape}>"
