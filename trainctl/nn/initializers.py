"""Weight initialisers by Keras name, drawing from the seeded backend generator.

fan_in / fan_out follow Keras: for a kernel of shape [..., in, out], fan_in = in ·
receptive field, fan_out = out · receptive field.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from trainctl.backend import generator
from trainctl.registry import Registry
from trainctl.spec.kinds.names import check_initializer  # noqa: F401  (the names live there, torch-free)

Initializer = Callable[[tuple, torch.dtype, torch.device], torch.Tensor]
initializers: Registry[Initializer] = Registry("initializer")


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(shape, dtype, device, limit: float) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=device)
    return out.uniform_(-limit, limit, generator=generator(device))


def _normal(shape, dtype, device, std: float) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype, device=device)
    return out.normal_(0.0, std, generator=generator(device))


@initializers.register("zeros")
def zeros(shape, dtype, device):
    """All zeros."""
    return torch.zeros(shape, dtype=dtype, device=device)


@initializers.register("ones")
def ones(shape, dtype, device):
    """All ones."""
    return torch.ones(shape, dtype=dtype, device=device)


@initializers.register("glorot_uniform")
def glorot_uniform(shape, dtype, device):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras default)."""
    fan_in, fan_out = _fans(shape)
    return _uniform(shape, dtype, device, math.sqrt(6.0 / (fan_in + fan_out)))


@initializers.register("glorot_normal")
def glorot_normal(shape, dtype, device):
    """N(0, 2 / (fan_in + fan_out)) (Glorot & Bengio 2010; Keras truncates, we do not)."""
    fan_in, fan_out = _fans(shape)
    return _normal(shape, dtype, device, math.sqrt(2.0 / (fan_in + fan_out)))


@initializers.register("he_uniform")
def he_uniform(shape, dtype, device):
    """U(-l, l) with l = sqrt(6 / fan_in) (He et al. 2015)."""
    fan_in, _ = _fans(shape)
    return _uniform(shape, dtype, device, math.sqrt(6.0 / fan_in))


@initializers.register("he_normal")
def he_normal(shape, dtype, device):
    """N(0, 2 / fan_in) (He et al. 2015)."""
    fan_in, _ = _fans(shape)
    return _normal(shape, dtype, device, math.sqrt(2.0 / fan_in))


