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

from trainctl.autodiff.tensor import Tensor, Variable
from trainctl.backend import DEFAULT_FLOAT
from trainctl.nn.initializers import initializers
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
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    # ---- life cycle -------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> tuple[int, ...]:
        """Create weights on ``device`` for ``input_shape``; return the output shape."""
        return self.compute_output_shape(tuple(input_shape), self.config)

    def call(self, x: Tensor, training: bool = False) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor, training: bool = False) -> Tensor:
        return self.call(x, training=training)

    def add_weight(self, name: str, shape: tuple[int, ...], initializer: str,
                   device: torch.device | str = "cpu", dtype: torch.dtype = DEFAULT_FLOAT,
                   trainable: bool = True) -> Variable:
        """A new Variable named ``<layer>/<name>``, initialised by a registered initialiser."""
        value = initializers.get(initializer)(tuple(shape), dtype, torch.device(device))
        var = Variable(value, name=f"{self.name}/{name}", trainable=trainable)
        self.weights.append(var)
        return var

    # ---- config round trip --------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The YAML form: ``{'type': ..., **options}`` (defaults included); ``name`` is the
        layer's actual name (given or automatic), so ``from_config`` keeps weight names."""
        return {"type": self.registered_name, **self.config.model_dump(), "name": self.name}

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
