"""What a built model costs: Keras-style rows (node, type, output shape, parameters,
inputs), trainable and non-trainable totals, FLOPs per training step, and a memory estimate
(parameters, gradients, optimizer slots, activations at a batch size) against what the
device has free.

Formulas (all per sample, batch axis excluded, one multiply-add = 2 FLOPs):

- a layer with a ``kernel`` weight (dense, conv*): ``2 · kernel.numel · positions``, where
  positions = output elements / output channels (for a transposed conv: input elements /
  input channels), plus one FLOP per output element for the bias;
- normalization: 4 FLOPs per output element (subtract, divide, scale, shift);
- other layers with weights are counted at 2 FLOPs per weight per position (embeddings
  and recurrent layers are approximations); flatten, reshape, permute, concatenate and dropout at 0; other weightless
  layers (activations, add, pooling) at 1 FLOP per output element;
- a training step = 3 × the forward FLOPs × batch size (the backward pass costs about twice
  the forward: Kaplan et al. 2020, "Scaling laws for neural language models", §2.1).

Memory: parameters and gradients at their dtype's size, optimizer slots as the optimizer
type declares them (``slot_names``: 2 per weight for adam, 1 for sgd with momentum, ...),
and every node's output kept for the backward pass at the batch size. It is an estimate: the
allocator, temporaries and the data pipeline come on top.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

from trainctl.graph.model import Model
from trainctl.spec.kinds.dag import GraphPlan

NORMALIZATION = {"batch_normalization", "layer_normalization"}
MOVES = {"flatten", "reshape", "permute", "concatenate", "dropout"}  # no arithmetic counted


@dataclass
class Row:
    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    inputs: list[str]
    shared_with: str | None
    flops: int  # forward, per sample


@dataclass
class Summary:
    """Rows and totals; ``memory`` in bytes by part; ``flops_per_step`` for a training step
    at ``batch_size``."""

    rows: list[Row]
    trainable: int
    non_trainable: int
    batch_size: int
    flops_per_step: int
    memory: dict[str, int] = field(default_factory=dict)

    @property
    def total_params(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def total_memory(self) -> int:
        return sum(self.memory.values())


def node_layers(model: Model, plan: GraphPlan) -> dict:
    """Node name → the layer it calls (a chain's layers in order)."""
    if hasattr(model, "node_layers"):
        return model.node_layers
    return {n.name: layer for n, layer in zip(plan.nodes, model.layers)}


def forward_flops(layer, input_shapes: list[tuple], output_shape: tuple) -> int:
    """FLOPs of one sample through ``layer`` (see the module docstring)."""
    out = math.prod(output_shape)
    weights = {w.name.rsplit("/", 1)[-1]: w for w in layer.weights}
    name = layer.registered_name
    if "kernel" in weights:
        kernel = weights["kernel"]
        if name.endswith("_transpose"):
            positions = math.prod(input_shapes[0]) // input_shapes[0][0]
        elif name.startswith("conv"):
            positions = out // output_shape[0]
        else:
            positions = out // output_shape[-1]
        return 2 * kernel.size * positions + (out if "bias" in weights else 0)
    if name in NORMALIZATION:
        return 4 * out
    if name in MOVES:
        return 0
    if layer.weights:
        return 2 * sum(w.size for w in layer.weights) * max(1, out // max(1, output_shape[-1]))
    return out


def summarize(model: Model, plan: GraphPlan, batch_size: int, slots_per_weight: int) -> Summary:
    """The :class:`Summary` of a built ``model`` laid out by ``plan``."""
    layers = node_layers(model, plan)
    rows = []
    for node in plan.nodes:
        layer = layers[node.name]
        own = [] if node.shared_with else layer.weights
        rows.append(Row(node.name, node.type, tuple(node.output_shape), sum(w.size for w in own),
                        sum(w.size for w in own if w.trainable), list(node.inputs),
                        node.shared_with,
                        forward_flops(layer, node.input_shapes, tuple(node.output_shape))))
    variables = model.variables
    trainable = sum(v.size for v in variables if v.trainable)
    size = {v.name: v.data.element_size() for v in variables}
    param_bytes = sum(v.size * size[v.name] for v in variables)
    grad_bytes = sum(v.size * size[v.name] for v in variables if v.trainable)
    act_bytes = batch_size * 4 * (sum(math.prod(i.shape) for i in plan.inputs) +
                                  sum(math.prod(r.output_shape) for r in rows))
    memory = {"parameters": param_bytes, "gradients": grad_bytes,
              "optimizer slots": slots_per_weight * grad_bytes, "activations": act_bytes}
    return Summary(rows, trainable, model.count_params() - trainable, batch_size,
                   3 * batch_size * sum(r.flops for r in rows), memory)


def available_memory(device: torch.device) -> int | None:
    """Free bytes on ``device``: CUDA's ``mem_get_info``; for the CPU, MemAvailable from
    /proc/meminfo, else ``os.sysconf`` available pages × page size; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float, unit: str = "B") -> str:
    """``1.5 MiB`` for bytes, ``3.2 G`` for counts (unit "")."""
    base, steps = (1024, ["", "Ki", "Mi", "Gi", "Ti"]) if unit == "B" else (1000, ["", "K", "M", "G", "T"])
    for step in steps:
        if abs(n) < base or step == steps[-1]:
            return f"{n:.4g} {step}{unit}".strip() if step or unit else f"{n:.4g}"
        n /= base
    return f"{n:.4g}"
