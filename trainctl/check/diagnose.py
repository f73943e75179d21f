"""The checks ``trainctl doctor`` adds to the smoke checks: the data, the loss at
initialisation, weight and activation scales per layer, and a float64 gradient check of the
whole model against finite differences. Each returns a :class:`Check` with its numbers."""

from __future__ import annotations

import math

import numpy as np
import torch

from trainctl.check.results import FAIL, PASS, WARN, Check
from trainctl.check.runner import CheckDef, Context
from trainctl.check.smoke import SMOKE, batch_loss

CLASS_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
#: A data check reads at most this many samples of each split.
MAX_SAMPLES = 200_000
#: Initial loss outside [LOW, HIGH] × its expected value is a warning.
LOW, HIGH = 0.5, 1.5
#: Regression targets whose |mean| or std exceeds this are a warning.
TARGET_SCALE = 10.0
#: Activation standard deviations outside [SMALL, LARGE] are warnings.
SMALL, LARGE = 1e-3, 1e3


def _arrays(dataset, limit: int = MAX_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    xs, ys, n = [], [], 0
    for x, y in dataset:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
        n += len(xs[-1])
        if n >= limit:
            break
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def _data(ctx: Context) -> Check:
    s = ctx.setup
    name, outputs = s.loss.registered_name, s.model.output_shape[-1]
    fails, warns, parts, values = [], [], [], {}
    labels = {}
    for split in ("train", "validation", "test"):
        if not s.splits.sizes.get(split, 0):
            continue
        x, y = labels[split] = _arrays(getattr(s.splits, split))
        bad_x = int((~np.isfinite(x)).sum()) if x.dtype.kind == "f" else 0
        bad_y = int((~np.isfinite(y)).sum()) if y.dtype.kind == "f" else 0
        values[split] = {"samples": len(x), "nonfinite_features": bad_x, "nonfinite_labels": bad_y}
        if bad_x or bad_y:
            fails.append(f"{split}: {bad_x} NaN/Inf feature values, {bad_y} NaN/Inf labels")
        if name in CLASS_LOSSES + ("binary_crossentropy",) and y.size and not bad_y:
            top = outputs if name in CLASS_LOSSES else 2
            lo, hi = float(y.min()), float(y.max())
            values[split].update(label_min=lo, label_max=hi)
            if lo < 0 or hi > top - 1 or not np.all(y == np.round(y)):
                fails.append(f"{split}: labels range {lo:g}..{hi:g} but {name} with {outputs} "
                             f"output(s) needs integers 0..{top - 1}")
    parts.append(f"{sum(v['samples'] for v in values.values())} samples: "
                 f"{'NaN/Inf found' if any('NaN' in f for f in fails) else 'no NaN/Inf'}")
    if name in CLASS_LOSSES + ("binary_crossentropy",) and "label_max" in values.get("train", {}):
        y = labels["train"][1]
        k = outputs if name in CLASS_LOSSES else 2
        counts = np.bincount(y.astype(np.int64).clip(0, k - 1), minlength=k)
        values["class_counts"] = counts.tolist()
        balance = float(counts.min() / counts.max()) if counts.max() else 0.0
        values["balance"] = balance
        lo, hi = values["train"]["label_min"], values["train"]["label_max"]
        parts.append(f"labels {lo:g}..{hi:g} fit {outputs} output(s) of {name}; train "
                     f"classes {counts.min()}–"
                     f"{counts.max()} samples (smallest/largest {balance:.2f})")
        missing = [str(i) for i, c in enumerate(counts) if c == 0]
        if missing:
            warns.append(f"class(es) {', '.join(missing)} never appear in the train split")
        elif balance < 0.1:
            warns.append(f"imbalanced classes: the smallest has {balance:.2f}× the samples of "
                         f"the largest (accuracy will flatter a majority-class model)")
    elif name == "mean_squared_error" and "train" in values:
        y = labels["train"][1]
        values["target_mean"], values["target_std"] = float(y.mean()), float(y.std())
        parts.append(f"targets mean {y.mean():.4g}, std {y.std():.4g}")
        if max(abs(float(y.mean())), float(y.std())) > TARGET_SCALE:
            warns.append(f"regression targets of mean {y.mean():.4g} and std {y.std():.4g}, "
                         f"while a fresh model outputs values of scale ~1: the output layer "
                         f"must travel far (slow with adaptive optimizers); standardize the "
                         f"targets or start the output bias at their mean")
    detail = "; ".join(fails or warns + parts)
    return Check("", FAIL if fails else WARN if warns else PASS, detail, values=values)


def expected_initial_loss(loss_name: str, classes: int | None, targets: np.ndarray | None
                          ) -> tuple[float, str] | None:
    """The loss of a model that knows nothing yet: (value, formula), or None.

    Softmax cross-entropy over C classes: ln C (uniform prediction, Karpathy's "verify loss
    @ init"); binary cross-entropy: ln 2 (p = ½); mean squared error: mean(y²), the loss of
    predicting 0 (its best constant is mean(y), with loss var(y)).
    """
    if loss_name in CLASS_LOSSES and classes:
        return math.log(classes), f"ln({classes}) for {loss_name} over {classes} classes"
    if loss_name == "binary_crossentropy":
        return math.log(2), "ln(2) for binary_crossentropy (p = 0.5)"
    if loss_name == "mean_squared_error" and targets is not None and targets.size:
        return float(np.mean(np.square(targets, dtype=np.float64))), "mean(y²) (predicting 0)"
    return None


def _initial_loss(ctx: Context) -> Check:
    from trainctl.autodiff import no_grad

    s = ctx.setup
    s.model.load_state_dict(ctx.initial)
    x, y = ctx.batch
    with no_grad():
        measured = float(batch_loss(s, x, y, training=False).data.double())
    targets = y.numpy() if s.loss.registered_name == "mean_squared_error" else None
    expected = expected_initial_loss(s.loss.registered_name, s.model.output_shape[-1], targets)
    values = {"measured": measured}
    if expected is None:
        return Check("", PASS, f"initial loss {measured:.4g} (no reference for "
                               f"{s.loss.registered_name})", values=values)
    ref, formula = expected
    values.update(expected=ref, ratio=measured / ref if ref else float("inf"))
    text = f"initial loss {measured:.4g} on the first batch; expected ≈ {ref:.4g} = {formula}"
    if not math.isfinite(measured):
        return Check("", FAIL, text, values=values)
    if ref and not LOW <= measured / ref <= HIGH:
        hint = ("the output layer is confidently wrong at initialisation: scale its weights "
                "down (or initialise the last layer's bias to the class priors)"
                if measured > ref else "lower than a model that knows nothing: do the labels "
                "leak into the features?")
        return Check("", WARN, f"{text}: {measured / ref:.2f}× ({hint})", values=values)
    return Check("", PASS, f"{text} ({measured / ref:.2f}×)", values=values)


def _stats(t: torch.Tensor) -> dict:
    d = t.detach().double()
    return {"mean": float(d.mean()), "std": float(d.std(unbiased=False)),
            "max_abs": float(d.abs().max()), "zeros": float((d == 0).double().mean())}


def _scales(ctx: Context) -> Check:
    from trainctl.autodiff import no_grad

    s = ctx.setup
    s.model.load_state_dict(ctx.initial)
    rows, warns = [], []
    with no_grad():
        for layer, h in s.model.trace(ctx.batch[0]):  # each node's output, chain or graph
            for w in layer.weights:
                st = _stats(w.data)
                rows.append({"layer": layer.name, "what": f"weight {w.name.split('/')[-1]} "
                             f"[{','.join(map(str, w.shape))}]", **st})
                if w.ndim >= 2 and st["std"] == 0:
                    warns.append(f"{w.name} is constant ({st['mean']:g}): its units stay "
                                 f"identical, symmetry is never broken")
            st = _stats(h.data)
            flat = h.data.reshape(h.shape[0], -1)
            dead = float((flat == 0).all(dim=0).double().mean()) if flat.shape[0] > 1 else 0.0
            rows.append({"layer": layer.name, "what": f"output [{','.join(map(str, h.shape))}]",
                         **st, "dead_units": dead})
            if not SMALL <= st["std"] <= LARGE:
                warns.append(f"output of {layer.name!r} has std {st['std']:.3g} "
                             f"({'vanishing' if st['std'] < SMALL else 'exploding'})")
            if dead > 0.5:
                warns.append(f"{dead:.0%} of the units of {layer.name!r} are zero for the "
                             f"whole batch (dead)")
    if warns:
        return Check("", WARN, "; ".join(warns), rows=rows)
    stds = [r["std"] for r in rows if r["what"].startswith("output")]
    return Check("", PASS, f"activation std {min(stds):.3g} to {max(stds):.3g} across "
                           f"{len(stds)} layers at initialisation", rows=rows)


#: Samples in the gradient check's batch, and random directions it checks.
GRADCHECK_BATCH, GRADCHECK_DIRECTIONS = 4, 2


def _gradcheck(ctx: Context) -> Check:
    from trainctl.autodiff import Tensor
    from trainctl.check.model_grad import gradcheck_model

    s = ctx.setup
    s.model.load_state_dict(ctx.initial)
    x, y = ctx.batch
    x, y = Tensor(x.data[:GRADCHECK_BATCH]), Tensor(y.data[:GRADCHECK_BATCH])
    r = gradcheck_model(s.model, s.loss, x, y, samples=ctx.options.grad_samples,
                        directions=GRADCHECK_DIRECTIONS, seed=s.spec.seed,
                        tick=ctx.deadline.check)
    values = {"checked": r.checked, "kinks": r.kinks,
              "worst": {k: list(v) for k, v in {**r.worst, **r.directions}.items()}}
    what = (f"{r.checked} coordinates of {len(r.worst)} variables and {GRADCHECK_DIRECTIONS} "
            f"random directions on {x.shape[0]} samples, float64")
    kinks = (f"; {r.kinks} point(s) at a kink of the loss (e.g. a ReLU input exactly 0), "
             f"where finite differences say nothing, not judged" if r.kinks else "")
    if r.failed:
        both = {**r.worst, **r.directions}
        parts = [f"{name}: ours {both[name][1]:.6g} vs finite differences {both[name][2]:.6g}"
                 for name in r.failed]
        return Check("", FAIL, f"gradients disagree with finite differences ({what}): "
                               + "; ".join(parts) + kinks, values=values)
    if r.kinks >= r.checked + GRADCHECK_DIRECTIONS:
        return Check("", WARN, f"{what}: nothing could be verified{kinks}", values=values)
    judged = [v[0] for v in list(r.worst.values()) + list(r.directions.values())]
    text = (f"{what}: all within tolerance (worst {max(judged, default=0.0):.2g} of the "
            f"allowed error){kinks}")
    return Check("", PASS, text, values=values)


_SMOKE = {c.name: c for c in SMOKE}
DOCTOR: list[CheckDef] = [
    _SMOKE["validate"], _SMOKE["build"],
    CheckDef("data", _data, "Reads every split: NaN or Inf in features or labels, class ids "
             "outside 0..outputs-1 for the loss (a silent garbage gradient or an index error "
             "later), classes missing from the train split, the balance of the classes, and the "
             f"scale of regression targets (|mean| or std above {TARGET_SCALE:g} warns)."),
    CheckDef("initial_loss", _initial_loss, "At initialisation a model knows nothing, so its "
             "loss should be near that of a uniform guess: ln(C) for softmax cross-entropy "
             "over C classes, ln 2 for binary cross-entropy. Much higher means overconfident "
             "initial outputs (training wastes its first steps); much lower, leaking labels. "
             f"Outside {LOW:g}×..{HIGH:g}× warns."),
    CheckDef("scales", _scales, "Weight and activation statistics per layer at "
             "initialisation (first batch, evaluation mode): standard deviations far below 1 "
             f"vanish, far above explode (outside {SMALL:g}..{LARGE:g} warns); a unit that is "
             "zero for the whole batch is dead; a constant kernel never breaks symmetry."),
    _SMOKE["gradients"],
    CheckDef("gradcheck", _gradcheck, "Our tape's gradient of the loss with respect to every "
             "trainable variable, in float64 on a tiny batch, against central finite "
             "differences: a mismatch is a bug in an op's or a layer's gradient, not in the "
             "spec."),
    _SMOKE["steps"], _SMOKE["overfit"], _SMOKE["checkpoint"], _SMOKE["eval"],
]


def doctor_spec(path, options=None):
    """Run the :data:`DOCTOR` checks on one spec file; never raises for the spec's problems."""
    from pathlib import Path

    from trainctl.check.runner import SmokeOptions, run_checks

    return run_checks(Path(path), DOCTOR, options or SmokeOptions())
