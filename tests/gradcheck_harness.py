"""The gradient-check table's harness: input samplers and the row registry.

Rows live in ``test_autodiff_gradcheck.py`` (the v0 ops) and in ``gradrows_<family>.py``
modules beside it (one per op family added later); the table test imports every
``gradrows_*.py`` so a new family's rows join the same checks and the same
"every registered op has a row" test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

# ---- input samplers (keep away from non-differentiable points) ------------------------
def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def away(lo, hi):
    """|x| in [lo, hi] with a random sign: relu/abs/division stay away from 0."""
    return lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(lo, hi, shape)


def lattice(phase):
    """Points of the grid 0.4 k + phase, jittered by < 0.05: operands with phases 0 and 0.2
    are at least 0.15 apart, so maximum/minimum never meet a tie."""
    return lambda rng, shape: (0.4 * rng.integers(-4, 5, shape) + phase
                               + rng.uniform(0.0, 0.05, shape))


def distinct():
    """Values at least 0.09 apart: max/min reductions have no ties."""
    def sample(rng, shape):
        n = math.prod(shape)
        vals = 0.1 * (rng.permutation(n) - n / 2) + rng.uniform(0.0, 0.01, n)
        return vals.reshape(shape)
    return sample


STD = uniform(-1.5, 1.5)
POS = uniform(0.5, 3.0)


@dataclass
class Row:
    id: str
    fn: Callable           # our op, on tc.Tensors
    ref: Callable          # the same computation in torch
    inputs: list = field(default_factory=list)  # (shape, sampler) per differentiable input


ROWS: list[Row] = []


def row(id_, fn, ref, *inputs):
    ROWS.append(Row(id_, fn, ref, list(inputs)))


def shp(shape) -> str:
    return "x".join(map(str, shape)) if shape else "0d"


