"""Gradcheck rows of the activation family (float64; references torch.nn.functional):
erf, gelu (exact and tanh), silu, elu, leaky_relu, softsign, hard_sigmoid, log_sigmoid.
Inputs stay 0.1 away from the kinks (0 for elu/leaky_relu, ±3 for hard_sigmoid)."""

from __future__ import annotations

import torch
import torch.nn.functional as TF

import trainctl as tc
from gradcheck_harness import away, row, shp, uniform


def _off_kinks(rng, shape):
    """Points in [-5.7, -3.3], [-1.2, 1.2] or [3.3, 5.7]: hard_sigmoid's three pieces."""
    return rng.choice([-4.5, 0.0, 4.5], shape) + rng.uniform(-1.2, 1.2, shape)


WIDE = uniform(-4.0, 4.0)
ACTIVATIONS = {
    "erf": (tc.ops.erf, torch.erf, WIDE),
    "gelu": (tc.ops.gelu, TF.gelu, WIDE),
    "gelu-tanh": (lambda x: tc.ops.gelu(x, approximate=True),
                  lambda x: TF.gelu(x, approximate="tanh"), WIDE),
    "silu": (tc.ops.silu, TF.silu, WIDE),
    "elu": (tc.ops.elu, TF.elu, away(0.1, 3.0)),
    "elu-alpha0.5": (lambda x: tc.ops.elu(x, alpha=0.5), lambda x: TF.elu(x, alpha=0.5),
                     away(0.1, 3.0)),
    "elu-positional-alpha": (lambda x: tc.ops.elu(x, 1.7), lambda x: TF.elu(x, 1.7),
                             away(0.1, 3.0)),
    "leaky_relu": (tc.ops.leaky_relu, lambda x: TF.leaky_relu(x, negative_slope=0.2),
                   away(0.1, 3.0)),
    "leaky_relu-alpha0.01": (lambda x: tc.ops.leaky_relu(x, alpha=0.01), TF.leaky_relu,
                             away(0.1, 3.0)),
    "softsign": (tc.ops.softsign, TF.softsign, WIDE),
    # torch's hardsigmoid backward multiplies by 1/6 rounded to float32 even in float64
    # (0.1666666716...), so the reference is relu6(x + 3) / 6, its forward exactly
    "hard_sigmoid": (tc.ops.hard_sigmoid, lambda x: TF.relu6(x + 3) / 6, _off_kinks),
    "log_sigmoid": (tc.ops.log_sigmoid, TF.logsigmoid, uniform(-8.0, 8.0)),
}
for _name, (_fn, _ref, _s) in ACTIVATIONS.items():
    for _shape in [(), (2, 3), (3, 1, 2)]:
        row(f"{_name}-{shp(_shape)}", _fn, _ref, (_shape, _s))
row("elu-large", tc.ops.elu, TF.elu, ((4,), away(30.0, 700.0)))
row("log_sigmoid-large", tc.ops.log_sigmoid, TF.logsigmoid, ((4,), away(30.0, 700.0)))
row("gelu-large", tc.ops.gelu, TF.gelu, ((4,), away(8.0, 40.0)))
