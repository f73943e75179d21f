"""Synchronised batch normalization for data-parallel training (``distribute:
{sync_batch_norm: true}``): the batch statistics are those of the global batch, over
every process of the default torch.distributed group, as torch.nn.SyncBatchNorm.

Not a spec ``type``: :func:`convert_sync_batch_norm` turns a built model's
``batch_normalization`` layers into :class:`SyncBatchNormalization` (same weights, same
config, checkpoints unchanged) when the spec asks for it.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from trainctl.autodiff import ops
from trainctl.autodiff.custom import custom_gradient
from trainctl.autodiff.tensor import Tensor
from trainctl.nn.layers.normalization import BatchNormalization


@custom_gradient
def all_reduce_sum(x: Tensor):
    """Σ over the ranks of ``x`` (every rank gets the sum); without an initialised
    process group, ``x`` itself. Gradient: the all-reduced sum of the upstream gradients,
    since every rank's output depends on every rank's input (d L / d x_r = Σ_s g_s)."""
    def reduce(t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(t)
        return t

    def grad(upstream: Tensor) -> Tensor:
        return Tensor(reduce(upstream.data))

    return Tensor(reduce(x.data)), grad


class SyncBatchNormalization(BatchNormalization):
    """batch_normalization whose training statistics cover every rank's batch.

    With per-rank batches x_r [B_r, ...] (channel axis ``axis``): μ = Σ_r Σ x_r / N and
    σ² = Σ_r Σ (x_r − μ)² / N (biased, two passes, N = Σ_r B_r · other dims), each from
    one all-reduce; y = γ (x − μ) / sqrt(σ² + ε) + β and the moving statistics are
    updated with μ, σ² (so every rank keeps the same ones). In evaluation mode it is
    batch_normalization. Gradients flow through both all-reduces (their gradient is an
    all-reduce as well), so the result equals one process normalising the whole batch.
    """

    def call(self, x, training=False):
        if not training:
            return super().call(x, training)
        cfg, ax = self.config, self._axis
        dims = tuple(i for i in range(x.ndim) if i != ax)
        shape = (1,) * ax + (x.shape[ax],) + (1,) * (x.ndim - ax - 1)
        count = torch.tensor([float(math.prod(x.shape[i] for i in dims))], dtype=torch.float64,
                             device=x.data.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
        n = float(count.item())
        mean = all_reduce_sum(ops.sum(x, axis=dims, keepdims=True)) / n
        centered = x - mean
        var = all_reduce_sum(ops.sum(centered * centered, axis=dims, keepdims=True)) / n
        y = centered * ops.rsqrt(var + cfg.epsilon)
        if self.gamma is not None:
            y = y * ops.reshape(self.gamma, shape)
        if self.beta is not None:
            y = y + ops.reshape(self.beta, shape)
        with torch.no_grad():
            m = cfg.momentum
            mv, vv = mean.data.reshape(-1), var.data.reshape(-1)
            self.moving_mean.data.mul_(m).add_(mv.to(self.moving_mean.dtype), alpha=1 - m)
            self.moving_variance.data.mul_(m).add_(vv.to(self.moving_variance.dtype), alpha=1 - m)
        return y


def convert_sync_batch_norm(layers) -> int:
    """Make every BatchNormalization of ``layers`` a SyncBatchNormalization, in place
    (weights and config kept, as torch.nn.SyncBatchNorm.convert_sync_batchnorm); returns
    how many were converted."""
    n = 0
    for layer in layers:
        if type(layer) is BatchNormalization:
            layer.__class__ = SyncBatchNormalization
            n += 1
    return n
