"""batch_normalization and layer_normalization (Keras semantics).

Options and shape rules are in :mod:`trainctl.spec.kinds.layers_reshape`.
"""

from __future__ import annotations

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.tensor import Tensor
from trainctl.nn.layers.base import Layer, layers
from trainctl.spec import kinds
from trainctl.spec.kinds.layers_reshape import _axis


@layers.register("batch_normalization")
class BatchNormalization(Layer, kinds.BatchNormalization):
    """Batch normalisation (Ioffe & Szegedy 2015) over the channel axis ``axis``.

    Weights: gamma, beta [C] (trainable, if scale/center) and moving_mean, moving_variance
    [C] (NON-trainable variables, saved in checkpoints). Training: y = gamma (x - μ_B) /
    sqrt(σ²_B + epsilon) + beta with the batch's statistics (biased variance, over every
    axis but ``axis``), then moving = moving·momentum + batch·(1 - momentum) (Keras; torch's
    BatchNorm momentum is 1 - ours and its running variance is unbiased). Evaluation: the
    same with the moving statistics.
    """

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg = self.config
        self._axis = _axis("batch_normalization", cfg.axis, input_shape) + 1  # with batch
        c = (input_shape[self._axis - 1],)
        self.gamma = (self.add_weight("gamma", c, cfg.gamma_initializer, device)
                      if cfg.scale else None)
        self.beta = (self.add_weight("beta", c, cfg.beta_initializer, device)
                     if cfg.center else None)
        self.moving_mean = self.add_weight("moving_mean", c, cfg.moving_mean_initializer, device,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c,
                                               cfg.moving_variance_initializer, device,
                                               trainable=False)
        return out

    def call(self, x, training=False):
        cfg, ax = self.config, self._axis
        if training:
            y = ops.batch_norm(x, self.gamma, self.beta, axis=ax, epsilon=cfg.epsilon)
            with torch.no_grad():
                dims = tuple(i for i in range(x.ndim) if i != ax)
                var, mean = torch.var_mean(x.data, dim=dims, correction=0)
                m = cfg.momentum
                self.moving_mean.data.mul_(m).add_(mean.to(self.moving_mean.dtype), alpha=1 - m)
                self.moving_variance.data.mul_(m).add_(var.to(self.moving_variance.dtype),
                                                       alpha=1 - m)
            return y
        shape = (-1,) + (1,) * (x.ndim - ax - 1)
        inv = torch.rsqrt(self.moving_variance.data + cfg.epsilon)
        scale = Tensor(inv) if self.gamma is None else self.gamma * Tensor(inv)
        shift = Tensor(-self.moving_mean.data) * scale
        if self.beta is not None:
            shift = shift + self.beta
        return x * ops.reshape(scale, shape) + ops.reshape(shift, shape)


@layers.register("layer_normalization")
class LayerNormalization(Layer, kinds.LayerNormalization):
    """Layer normalisation (Ba et al. 2016): per-example statistics over ``axis``;
    gamma, beta of the normalized axes' shape."""

    def build(self, input_shape, device="cpu"):
        out = self.compute_output_shape(input_shape, self.config)
        cfg = self.config
        axes = self.axes(input_shape, cfg)
        self._axes = tuple(a + 1 for a in axes)
        shape = tuple(input_shape[a] for a in axes)
        self.gamma = (self.add_weight("gamma", shape, cfg.gamma_initializer, device,
                                      regularizer=cfg.gamma_regularizer) if cfg.scale else None)
        self.beta = (self.add_weight("beta", shape, cfg.beta_initializer, device,
                                     regularizer=cfg.beta_regularizer) if cfg.center else None)
        return out

    def call(self, x, training=False):
        return ops.layer_norm(x, self.gamma, self.beta, axes=self._axes,
                              epsilon=self.config.epsilon)
