"""Every registered layer type written in plain PyTorch (torch.nn modules, torch.nn.functional),
holding copies of our layer's weights: the reference ``trainctl bench --compare-torch``
times our engine against, and an oracle for our layers in the tests.

:data:`torch_layers` maps each layer type name to a function ``layer -> Translation``.
``Translation.pairs`` ties each of our weights to the torch parameters holding it and the
function that maps their values (or gradients) back into our layout; translated
non-trainable state (batch normalization's moving statistics) becomes buffers.

What differs by design: torch's BatchNorm updates its running variance with the unbiased
batch variance (ours, as Keras, the biased one), so evaluation after training steps differs
slightly; dropout masks come from torch's generator; max pooling gives a tied maximum's
gradient to the first cell (ours splits it evenly). lstm and gru take torch's fused
kernels, which fix the activations to tanh and sigmoid: other activations raise
TrainctlError, as does a batch_normalization over inputs of rank above 4 (batch included: 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainctl.autodiff.ops import same_padding
from trainctl.errors import TrainctlError
from trainctl.registry import Registry
from trainctl.spec.kinds.layers_conv import pair

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "softplus": nn.Softplus, "softmax": lambda: nn.Softmax(dim=-1),
    "log_softmax": lambda: nn.LogSoftmax(dim=-1), "gelu": nn.GELU, "silu": nn.SiLU,
    "elu": nn.ELU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "softsign": nn.Softsign,
    "hard_sigmoid": nn.Hardsigmoid, "log_sigmoid": nn.LogSigmoid,
}


def _same(*tensors):
    return tensors[0]


@dataclass
class Translation:
    """``module`` computes what our layer computes; ``pairs``: (our Variable, the torch
    parameters holding it, ``fn(*their tensors) -> tensor in our layout``)."""

    module: nn.Module
    pairs: list[tuple] = field(default_factory=list)


torch_layers: Registry[Callable[..., Translation]] = Registry("PyTorch layer translation")


def activation(name: str | None) -> nn.Module:
    """The torch.nn module of one of our activation names; TrainctlError if there is none."""
    try:
        return ACTIVATIONS[name or "linear"]()
    except KeyError:
        raise TrainctlError(f"--compare-torch: no PyTorch translation of activation "
                            f"{name!r}") from None


def translate_layer(layer) -> Translation:
    """``layer`` (built) as a Translation on its weights' device and dtype."""
    kind = layer.registered_name
    if kind not in torch_layers:
        raise TrainctlError(f"--compare-torch: no PyTorch translation of layer type {kind!r}")
    return torch_layers.get(kind)(layer)


def _load(param: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value)


def _on(module: nn.Module, like) -> nn.Module:
    """``module`` moved to the device and dtype of our Variable ``like``."""
    return module.to(device=like.data.device, dtype=like.data.dtype)


def _frozen(param: nn.Parameter, value: float) -> None:
    with torch.no_grad():
        param.fill_(value)
    param.requires_grad_(False)


class Lists(nn.Module):
    """A merge of a list of tensors (one tensor is a one-item list, as our Layer.__call__)."""

    def __init__(self, fn: Callable[[list], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, inputs):
        return self.fn([inputs] if isinstance(inputs, torch.Tensor) else list(inputs))


class Permute(nn.Module):
    """x.permute(perm) → module → the inverse permutation (identity perm: module alone)."""

    def __init__(self, perm, module: nn.Module | None = None):
        super().__init__()
        self.perm, self.inverse = tuple(perm), tuple(sorted(range(len(perm)), key=perm.__getitem__))
        self.inner = module

    def forward(self, x):
        y = x.permute(self.perm)
        return y if self.inner is None else self.inner(y).permute(self.inverse)


class Crop2d(nn.Module):
    """x[..., top:top + h, left:left + w]."""

    def __init__(self, start, size):
        super().__init__()
        self.start, self.size = tuple(start), tuple(size)

    def forward(self, x):
        (t, l), (h, w) = self.start, self.size
        return x[..., t:t + h, l:l + w]


class AvgPoolSame(nn.Module):
    """Average pooling over a zero-padded input dividing by the real cells of each window
    (TensorFlow's 'same'): sums of the padded input over counts of the padded ones."""

    def __init__(self, kernel, strides, pads, size):
        super().__init__()
        self.kernel, self.strides, self.pads = kernel, strides, pads
        ones = F.pad(torch.ones(1, 1, *size, dtype=torch.float64), pads)
        self.register_buffer("counts", F.avg_pool2d(ones, kernel, strides, divisor_override=1))

    def forward(self, x):
        sums = F.avg_pool2d(F.pad(x, self.pads), self.kernel, self.strides, divisor_override=1)
        return sums / self.counts.to(x.dtype)


def _tf_pads(sizes, ks, ss, ds) -> tuple[int, ...]:
    """TensorFlow 'same' pads in F.pad order (last axis first)."""
    pads = [same_padding(n, k, s, d)[1:] for n, k, s, d in zip(sizes, ks, ss, ds)]
    return tuple(p for lo_hi in reversed(pads) for p in lo_hi)


@torch_layers.register("dense")
def dense(layer) -> Translation:
    cfg = layer.config
    linear = _on(nn.Linear(layer.input_shape[-1], cfg.units, bias=cfg.use_bias), layer.kernel)
    _load(linear.weight, layer.kernel.data.T)
    pairs = [(layer.kernel, (linear.weight,), lambda w: w.T)]
    if cfg.use_bias:
        _load(linear.bias, layer.bias.data)
        pairs.append((layer.bias, (linear.bias,), _same))
    return Translation(nn.Sequential(linear, activation(cfg.activation)), pairs)


@torch_layers.register("activation")
def activation_layer(layer) -> Translation:
    return Translation(activation(layer.config.activation))


@torch_layers.register("dropout")
def dropout(layer) -> Translation:
    return Translation(nn.Dropout(layer.config.rate))


@torch_layers.register("flatten")
def flatten(layer) -> Translation:
    return Translation(nn.Flatten())


def _conv(layer) -> Translation:
    cfg, nd = layer.config, layer.rank
    ks, ss, ds = (pair(v, nd) for v in (cfg.kernel_size, cfg.strides, cfg.dilation_rate))
    c_in, sizes = layer.input_shape[0], layer.input_shape[1:]
    mods: list[nn.Module] = []
    if layer.transposed:
        out = layer.output_shape[1:]
        pads = [same_padding(m, k, s, d)[1:] if cfg.padding == "same" else (0, 0)
                for m, k, s, d in zip(out, ks, ss, ds)]
        extra = tuple(m + lo + hi - ((n - 1) * s + (k - 1) * d + 1)
                      for m, (lo, hi), n, k, s, d in zip(out, pads, sizes, ks, ss, ds))
        conv = nn.ConvTranspose2d(c_in, cfg.filters, ks, ss, 0, extra, cfg.groups,
                                  cfg.use_bias, ds)
        mods += [conv, Crop2d([lo for lo, _ in pads], out)]
    else:
        if cfg.padding == "same":
            mods.append(nn.ConstantPad1d(_tf_pads(sizes, ks, ss, ds), 0.0) if nd == 1 else
                        nn.ConstantPad2d(_tf_pads(sizes, ks, ss, ds), 0.0))
        cls = nn.Conv1d if nd == 1 else nn.Conv2d
        conv = cls(c_in, cfg.filters, ks, ss, 0, ds, cfg.groups, cfg.use_bias)
        mods.append(conv)
    _on(conv, layer.kernel)
    _load(conv.weight, layer.kernel.data)  # our kernels are stored in torch's layout
    pairs = [(layer.kernel, (conv.weight,), _same)]
    if cfg.use_bias:
        _load(conv.bias, layer.bias.data)
        pairs.append((layer.bias, (conv.bias,), _same))
    return Translation(nn.Sequential(*mods, activation(cfg.activation)), pairs)


for _name in ("conv1d", "conv2d", "conv2d_transpose"):
    torch_layers.register(_name)(lambda layer: _conv(layer))


def _pool(layer, average: bool) -> Translation:
    cfg = layer.config
    ks = pair(cfg.pool_size, 2)
    ss = pair(cfg.strides, 2) if cfg.strides is not None else ks
    pads = (_tf_pads(layer.input_shape[1:], ks, ss, (1, 1)) if cfg.padding == "same"
            else (0, 0, 0, 0))
    if not any(pads):
        return Translation(nn.AvgPool2d(ks, ss) if average else nn.MaxPool2d(ks, ss))
    if average:
        return Translation(AvgPoolSame(ks, ss, pads, layer.input_shape[1:]))
    return Translation(nn.Sequential(nn.ConstantPad2d(pads, -math.inf), nn.MaxPool2d(ks, ss)))


torch_layers.register("max_pooling2d")(lambda layer: _pool(layer, average=False))
torch_layers.register("average_pooling2d")(lambda layer: _pool(layer, average=True))


def _global_pool(layer, module: nn.Module) -> Translation:
    return Translation(module if layer.config.keepdims else nn.Sequential(module, nn.Flatten()))


torch_layers.register("global_average_pooling2d")(
    lambda layer: _global_pool(layer, nn.AdaptiveAvgPool2d(1)))
torch_layers.register("global_max_pooling2d")(
    lambda layer: _global_pool(layer, nn.AdaptiveMaxPool2d(1)))


@torch_layers.register("reshape")
def reshape(layer) -> Translation:
    return Translation(nn.Sequential(nn.Flatten(), nn.Unflatten(1, tuple(layer.output_shape))))


@torch_layers.register("permute")
def permute(layer) -> Translation:
    return Translation(Permute((0, *layer.config.dims)))


def _affine(layer, weight, bias, pairs) -> None:
    """Copy gamma/beta into torch's weight/bias; a missing one is frozen at 1 / 0."""
    for ours, theirs, neutral in ((layer.gamma, weight, 1.0), (layer.beta, bias, 0.0)):
        if ours is None:
            _frozen(theirs, neutral)
        else:
            _load(theirs, ours.data)
            pairs.append((ours, (theirs,), _same))


@torch_layers.register("batch_normalization")
def batch_normalization(layer) -> Translation:
    cfg, ax, rank = layer.config, layer._axis, len(layer.input_shape) + 1
    if rank > 5:
        raise TrainctlError(f"--compare-torch: no PyTorch batch normalization for inputs of "
                            f"rank {rank} (layer {layer.name!r})")
    cls = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank]
    affine = cfg.scale or cfg.center
    bn = _on(cls(layer.input_shape[ax - 1], eps=cfg.epsilon, momentum=1.0 - cfg.momentum,
                 affine=affine), layer.moving_mean)
    bn.running_mean.copy_(layer.moving_mean.data)
    bn.running_var.copy_(layer.moving_variance.data)
    pairs: list = []
    if affine:
        _affine(layer, bn.weight, bn.bias, pairs)
    if ax != 1:  # channel axis to 1 and back
        perm = [0, ax] + [i for i in range(1, rank) if i != ax]
        return Translation(Permute(perm, bn), pairs)
    return Translation(bn, pairs)


@torch_layers.register("layer_normalization")
def layer_normalization(layer) -> Translation:
    cfg, axes, rank = layer.config, layer._axes, len(layer.input_shape) + 1
    shape = tuple(layer.input_shape[a - 1] for a in axes)
    affine = cfg.scale or cfg.center
    ln = nn.LayerNorm(shape, eps=cfg.epsilon, elementwise_affine=affine, bias=affine)
    pairs: list = []
    if affine:
        _on(ln, layer.gamma if layer.gamma is not None else layer.beta)
        _affine(layer, ln.weight, ln.bias, pairs)
    perm = [i for i in range(rank) if i not in axes] + list(axes)
    if perm == list(range(rank)):
        return Translation(ln, pairs)
    return Translation(Permute(perm, ln), pairs)


class Ids(nn.Embedding):
    """nn.Embedding over ids given as floats holding whole numbers (truncated to int64)."""

    def forward(self, x):
        return super().forward(x.long())


@torch_layers.register("embedding")
def embedding(layer) -> Translation:
    cfg = layer.config
    emb = _on(Ids(cfg.input_dim, cfg.output_dim), layer.embeddings)
    _load(emb.weight, layer.embeddings.data)
    return Translation(emb, [(layer.embeddings, (emb.weight,), _same)])


class Positions(nn.Module):
    """x [N, T, D] + table[:T] (a parameter, or a fixed buffer)."""

    def __init__(self, table: torch.Tensor, learned: bool):
        super().__init__()
        if learned:
            self.table = nn.Parameter(table.detach().clone())
        else:
            self.register_buffer("table", table.detach().clone())

    def forward(self, x):
        return x + self.table[: x.shape[1]].to(x.dtype)


@torch_layers.register("positional_embedding")
def positional_embedding(layer) -> Translation:
    mod = Positions(layer.positions.data, layer.config.learned)
    pairs = [(layer.positions, (mod.table,), _same)] if layer.config.learned else []
    return Translation(mod, pairs)


def _sum(xs):
    return torch.stack(xs).sum(dim=0)


def _product(xs):
    out = xs[0]
    for x in xs[1:]:
        out = out * x
    return out


torch_layers.register("add")(lambda layer: Translation(Lists(_sum)))
torch_layers.register("multiply")(lambda layer: Translation(Lists(_product)))
torch_layers.register("subtract")(lambda layer: Translation(Lists(lambda xs: xs[0] - xs[1])))


@torch_layers.register("concatenate")
def concatenate(layer) -> Translation:
    axis = layer.config.axis
    return Translation(Lists(lambda xs: torch.cat(xs, dim=axis)))


from trainctl.check.torch_seq import attention, gru, lstm  # noqa: E402  (registers them)

__all__ = ["ACTIVATIONS", "Translation", "torch_layers", "translate_layer", "activation",
           "attention", "gru", "lstm"]
