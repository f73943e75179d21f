"""The model graph: layers wired input → output, with shapes inferred at build time.

v0 models are a chain (the spec's ``model.layers``); a chain is the simplest DAG, and the
DAG form (``model.nodes``) extends this class. Shape inference runs every layer's
``build`` in order, so a bad wiring is an error before any training starts.
"""

from __future__ import annotations

import torch

from trainctl.autodiff.ops.core import fmt_shape
from trainctl.autodiff.tensor import Tensor, Variable
from trainctl.errors import CheckpointError, ShapeError
from trainctl.nn.layers import Layer


class LayerShapeError(ShapeError):
    """A layer could not take its input shape; ``index`` says which layer."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index
        self.message = message


class Model:
    """A chain of built layers.

    ``input_shape`` and ``output_shape`` exclude the batch axis. Variable names are
    ``<layer name>/<weight>`` and unique within the model.
    """

    def __init__(self, layers: list[Layer], input_shape: tuple[int, ...], name: str = "model"):
        self.layers = list(layers)
        self.input_shape = tuple(input_shape)
        self.output_shape: tuple[int, ...] | None = None
        self.name = name

    def build(self, device: torch.device | str = "cpu") -> "Model":
        """Create every layer's weights on ``device`` and infer shapes.

        Raises LayerShapeError naming the layer, its index and both shapes.
        """
        shape = self.input_shape
        for i, layer in enumerate(self.layers):
            layer.input_shape = shape
            try:
                shape = tuple(layer.build(shape, device=device))
            except ShapeError as exc:
                raise LayerShapeError(i, f"layer {layer.name!r} ({layer.registered_name}) cannot "
                                         f"take input shape {fmt_shape(shape)}: {exc}") from None
            layer.output_shape = shape
        self.output_shape = shape
        return self

    def __call__(self, x: Tensor, training: bool = False) -> Tensor:
        """Forward pass: x [batch, *input_shape] -> [batch, *output_shape]."""
        if x.shape[1:] != self.input_shape:
            raise ShapeError(f"model {self.name!r}: expected inputs [batch,"
                             f"{','.join(map(str, self.input_shape))}], got {fmt_shape(x.shape)}")
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def trace(self, x: Tensor, training: bool = False):
        """Yield ``(layer, output)`` for each layer call of a forward pass, in order."""
        for layer in self.layers:
            x = layer(x, training=training)
            yield layer, x

    @property
    def variables(self) -> list[Variable]:
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_variables(self) -> list[Variable]:
        return [w for w in self.variables if w.trainable]

    def count_params(self) -> int:
        return sum(v.size for v in self.variables)

    def summary(self) -> list[dict]:
        """One row per layer: name, type, output shape and number of parameters."""
        return [{"name": layer.name, "type": layer.registered_name,
                 "output_shape": [None, *layer.output_shape],
                 "params": sum(w.size for w in layer.weights)} for layer in self.layers]

    # ---- weights as named tensors ---------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Every variable's value by name (CPU-independent: tensors stay on their device)."""
        return {v.name: v.data for v in self.variables}

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy values into the variables (onto their device).

        Raises CheckpointError naming a missing, unexpected or mis-shaped weight.
        """
        names = {v.name for v in self.variables}
        missing = sorted(names - set(tensors))
        extra = sorted(set(tensors) - names)
        if missing or extra:
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                    ([f"unexpected {', '.join(extra)}"] if extra else [])
            raise CheckpointError(f"checkpoint does not fit the model: {'; '.join(parts)}")
        for v in self.variables:  # check every shape before copying any: all or nothing
            value = tensors[v.name]
            if tuple(value.shape) != v.shape:
                raise CheckpointError(f"checkpoint weight {v.name!r} has shape {fmt_shape(value.shape)}, "
                                      f"the model needs {fmt_shape(v.shape)}")
        for v in self.variables:
            v.data.copy_(tensors[v.name].to(device=v.device, dtype=v.dtype))
