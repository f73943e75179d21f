"""A gradient check of a whole model: the gradient of the mean loss of a tiny batch with
respect to every trainable variable, from our tape, against float64 central finite
differences (f(θ + ε) − f(θ − ε)) / 2ε.

The model's variables are switched to float64 copies for the check and put back after, so
the check sees float64 rounding only. Evaluation mode (dropout off) makes the loss a
deterministic function of the weights. Checked: up to ``samples`` coordinates of each
variable (all of a smaller one; the others drawn by a seeded generator, the largest
gradient entry always included) plus ``directions`` random directions through all
variables at once, so every variable is covered. Tolerance as ``tc.gradcheck``'s:
|ours − fd| ≤ atol + rtol·|fd|.

Kinks: where the loss is not differentiable (a ReLU input exactly 0, e.g. after zero
initialisation) the two one-sided differences disagree and no finite difference is the
gradient; a point whose one-sided slopes differ by more than the tolerance is counted in
``kinks`` and not judged (CS231n's "kinks in the objective").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from trainctl.autodiff import GradientTape, Tensor, no_grad, ops


@dataclass
class GradcheckResult:
    """``worst``: per variable name, (|ours − fd| / bound, ours, fd) at its worst checked
    coordinate (a ratio > 1 fails); ``directions``: the same by 'direction k';
    ``failed``: names of variables (or 'direction k') that failed; ``kinks``: checked
    points skipped because the loss has a kink there (below)."""

    checked: int = 0
    kinks: int = 0
    worst: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    directions: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


def gradcheck_model(model, loss_fn, x: Tensor, y: Tensor, samples: int = 32,
                    directions: int = 2, eps: float = 1e-6, atol: float = 1e-5,
                    rtol: float = 1e-4, seed: int = 0, tick=lambda: None) -> GradcheckResult:
    """Check ``d mean(loss_fn(y, model(x))) / d variables`` (see the module docstring).

    ``tick`` is called between evaluations (a deadline check). The variables are restored
    (values, dtypes) whatever happens.
    """
    params = model.trainable_variables
    saved = [p.data for p in params]
    x64 = Tensor(x.data.to(torch.float64)) if x.dtype.is_floating_point else x
    y64 = Tensor(y.data.to(torch.float64)) if y.dtype.is_floating_point else y

    def f() -> float:
        with no_grad():
            return float(ops.mean(loss_fn(y64, model(x64, training=False))).data)

    rng = np.random.default_rng(seed)
    result = GradcheckResult()
    try:
        for p in params:
            p.data = p.data.detach().to(torch.float64).clone()
        with GradientTape() as tape:
            loss = ops.mean(loss_fn(y64, model(x64, training=False)))
        grads = [g.data if g is not None else torch.zeros_like(p.data)
                 for p, g in zip(params, tape.gradient(loss, params))]

        f0 = f()

        def judge(ours: float, up: float, down: float) -> tuple[float, float, float] | None:
            fd = (up - down) / (2 * eps)
            if abs(up - 2 * f0 + down) / eps > atol + rtol * abs(fd):
                result.kinks += 1  # one-sided slopes disagree: not differentiable here
                return None
            ratio = abs(ours - fd) / (atol + rtol * abs(fd))
            return (ratio if ratio == ratio else float("inf"), ours, fd)  # NaN never passes

        for p, g in zip(params, grads):
            flat, gflat = p.data.view(-1), g.reshape(-1)
            n = flat.numel()
            if n <= samples:
                picks = np.arange(n)
            else:  # the largest entry and samples - 1 others
                top = int(gflat.abs().argmax())
                others = rng.choice(n - 1, samples - 1, replace=False)
                picks = np.append(others + (others >= top), top)
            worst = (0.0, 0.0, 0.0)
            for i in picks.tolist():
                tick()
                orig = float(flat[i])
                flat[i] = orig + eps
                up = f()
                flat[i] = orig - eps
                down = f()
                flat[i] = orig
                result.checked += 1
                found = judge(float(gflat[i]), up, down)
                worst = max(worst, found or worst)
            result.worst[p.name] = worst
            if not worst[0] <= 1.0:
                result.failed.append(p.name)
        base = [p.data.clone() for p in params]
        for k in range(directions):
            tick()
            dirs = [torch.from_numpy(rng.standard_normal(tuple(p.shape))).to(p.device)
                    for p in params]
            norm = float(torch.sqrt(sum((d * d).sum() for d in dirs)))
            dirs = [d / norm for d in dirs]
            ours = float(sum((g * d).sum() for g, d in zip(grads, dirs)))
            values = []
            for sign in (1.0, -1.0):
                for p, b, d in zip(params, base, dirs):
                    p.data.copy_(b + sign * eps * d)
                values.append(f())
            for p, b in zip(params, base):
                p.data.copy_(b)
            found = judge(ours, *values)
            if found is not None:
                result.directions[f"direction {k + 1}"] = found
                if not found[0] <= 1.0:
                    result.failed.append(f"direction {k + 1}")
    finally:
        for p, data in zip(params, saved):
            p.data = data
    return result
