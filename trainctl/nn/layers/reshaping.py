"""reshape and permute (Keras names; shapes exclude the batch axis).

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_reshape`.
"""

from __future__ import annotations

from trainctl.autodiff import ops
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds


@layers.register("reshape")
class Reshape(Layer, kinds.Reshape):
    """[N, *input_shape] -> [N, *target_shape] (row-major order kept)."""

    def build(self, input_shape, device="cpu"):
        self._target = self.compute_output_shape(input_shape, self.config)
        return self._target

    def call(self, x, training=False):
        return ops.reshape(x, (x.shape[0], *self._target))


@layers.register("permute")
class Permute(Layer, kinds.Permute):
    """[N, d1, ..., dk] -> [N, d_dims[0], ...] (``dims`` 1-based, the batch axis stays)."""

    def call(self, x, training=False):
        return ops.permute(x, (0, *self.config.dims))
