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


@initializers.register("lecun_uniform")
def lecun_uniform(shape, dtype, device):
    """U(-l, l) with l = sqrt(3 / fan_in) (LeCun et al. 1998; Keras' LecunUniform)."""
    fan_in, _ = _fans(shape)
    return _uniform(shape, dtype, device, math.sqrt(3.0 / fan_in))


@initializers.register("lecun_normal")
def lecun_normal(shape, dtype, device):
    """N(0, 1 / fan_in) (Keras truncates, we do not)."""
    fan_in, _ = _fans(shape)
    return _normal(shape, dtype, device, math.sqrt(1.0 / fan_in))


@initializers.register("random_uniform")
def random_uniform(shape, dtype, device):
    """U(-0.05, 0.05) (Keras' RandomUniform defaults; Embedding's default)."""
    return _uniform(shape, dtype, device, 0.05)


@initializers.register("random_normal")
def random_normal(shape, dtype, device):
    """N(0, 0.05²) (Keras' RandomNormal defaults)."""
    return _normal(shape, dtype, device, 0.05)


@initializers.register("constant")
def constant(shape, dtype, device, value: float = 0.0):
    """Every entry ``value`` (0.0 when named without options)."""
    return torch.full(shape, float(value), dtype=dtype, device=device)


@initializers.register("orthogonal")
def orthogonal(shape, dtype, device, gain: float = 1.0):
    """``gain`` times a random orthogonal matrix (Saxe et al. 2014; Keras' Orthogonal).

    The shape is viewed as [prod(shape[:-1]), shape[-1]]: its rows (if fewer) or columns
    are orthonormal. Q of the QR decomposition of a standard normal matrix, with column
    signs fixed by diag(R) so that Q is uniformly distributed (Mezzadri 2007).
    """
    if len(shape) < 2:
        raise ValueError(f"orthogonal initializer needs a shape of rank >= 2, got {list(shape)}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = torch.empty((max(rows, cols), min(rows, cols)), dtype=torch.float64, device="cpu")
    flat.normal_(0.0, 1.0, generator=generator(torch.device("cpu")))
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).to(dtype=dtype, device=device)


def make_initializer(option) -> Initializer:
    """The initializer for a ``*_initializer`` option: a registered name, or a Config with
    ``type`` and arguments (trainctl.spec.kinds.weights: constant value, orthogonal gain)."""
    if isinstance(option, str):
        return initializers.get(option)
    fn = initializers.get(option.type)
    kwargs = option.model_dump(exclude={"type"})
    return lambda shape, dtype, device: fn(shape, dtype, device, **kwargs)
