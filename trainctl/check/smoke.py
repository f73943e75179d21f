"""``trainctl smoke``: does each spec build, train, save and evaluate? Fast wiring checks
for CI, run on the first batches of each spec's own data with its own optimizer.

The checks, in order (each is a :class:`~trainctl.check.runner.CheckDef` of :data:`SMOKE`):

validate    the spec file parses and matches the schema (every error, located)
build       ``train.prepare``: registries, data, model on the device, shape cross-checks
gradients   one batch at initialisation: every trainable variable gets a gradient that is
            connected to the loss, finite and not all zero (the others are named)
steps       ``options.steps`` training steps (default 20) on the first batches; the loss
            stays finite
overfit     from the initial weights, with a fresh optimizer of the spec's type and
            settings, train on one batch of ``overfit_batch`` (32) samples until its loss
            (evaluation mode) is at most ``overfit_factor`` (0.5) × its start, within
            ``overfit_steps`` (200) steps
checkpoint  ``Trainer.save`` → ``io.load_checkpoint`` → a freshly built model gives
            bit-identical outputs; the optimizer state loads back
eval        ``train.evaluate`` on the first ``eval_batches`` (2) batches of the validation
            split (test, else train, when it is empty): finite loss and metrics
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch

from trainctl.check.runner import CheckDef, Context, SmokeOptions, find_specs, run_checks
from trainctl.check.results import FAIL, PASS, WARN, Check, SpecReport
from trainctl.errors import DataError


def _validate(ctx: Context) -> Check:
    """The schema, then every layer, loss, optimizer, metric, schedule and callback the
    spec names with their options and the model's shapes (``check_references``, as
    ``trainctl validate`` does); the data are checked by ``build``."""
    from trainctl.spec import load_spec
    from trainctl.spec.kinds.check import check_references

    spec = load_spec(ctx.path, ctx.options.overrides)
    errors = check_references(spec.doc).errors
    if errors:
        raise spec.doc.sorted(list(errors))
    ctx.spec = spec
    return Check("", PASS, f"spec {ctx.spec.name!r} is valid")


def _build(ctx: Context) -> Check:
    from trainctl.backend import asks_auto
    from trainctl.train import prepare
    from trainctl.train.loop import to_tensors

    ctx.setup = s = prepare(ctx.spec, device=ctx.options.device)
    ctx.initial = {k: v.clone() for k, v in s.model.state_dict().items()}
    first = next(iter(s.splits.train.iterate(epoch=0)), None)
    if first is None:
        raise DataError("the train split yields no batch")
    ctx.batch = to_tensors(first, s.device)
    sizes = "/".join(str(s.splits.sizes.get(k, 0)) for k in ("train", "validation", "test"))
    shape = "[" + ",".join(map(str, s.model.output_shape)) + "]"
    return Check("", PASS, f"{s.model.count_params():,} parameters, output {shape}, "
                           f"train/validation/test {sizes} samples, on {s.device}",
                 values={"params": s.model.count_params(), "device": str(s.device),
                         "device_auto": asks_auto(ctx.options.device if ctx.options.device
                                                  is not None else ctx.spec.device),
                         "sizes": dict(s.splits.sizes)})


def batch_loss(setup, x, y, training: bool):
    """Mean loss of one batch as a scalar Tensor (taped when a tape is recording)."""
    from trainctl.autodiff import ops

    return ops.mean(setup.loss(y, setup.model(x, training=training)))


def _gradients(ctx: Context) -> Check:
    from trainctl.autodiff import GradientTape

    s, (x, y) = ctx.setup, ctx.batch
    params = s.model.trainable_variables
    if not params:
        return Check("", WARN, "the model has no trainable variables: nothing can learn")
    with GradientTape() as tape:
        loss = batch_loss(s, x, y, training=True)
    grads = tape.gradient(loss, params)
    problems = {"detached (no path from the loss)": [], "non-finite": [],
                "all zero (dead)": []}
    norms = {}
    for p, g in zip(params, grads):
        if g is None:
            problems["detached (no path from the loss)"].append(p.name)
            continue
        norms[p.name] = float(torch.linalg.vector_norm(g.data.double()))
        if not bool(torch.isfinite(g.data).all()):
            problems["non-finite"].append(p.name)
        elif not bool(g.data.any()):
            problems["all zero (dead)"].append(p.name)
    bad = {k: v for k, v in problems.items() if v}
    if bad:
        text = "; ".join(f"{kind} gradient: {', '.join(names)}" for kind, names in bad.items())
        return Check("", FAIL, text, values={"grad_norms": norms, **bad})
    return Check("", PASS, f"all {len(params)} trainable variables get finite, non-zero "
                           f"gradients (norms {min(norms.values()):.3g} to "
                           f"{max(norms.values()):.3g})", values={"grad_norms": norms})


def train_batches(setup) -> Iterator:
    """The training split's batches as Tensors on the device, epoch after epoch."""
    from trainctl.train.loop import to_tensors

    for epoch in itertools.count():
        empty = True
        for batch in setup.splits.train.iterate(epoch=epoch):
            empty = False
            yield to_tensors(batch, setup.device)
        if empty:
            raise DataError("the train split yields no batch")


def _steps(ctx: Context) -> Check:
    from trainctl.backend import manual_seed
    from trainctl.train import Trainer
    from trainctl.train.loop import training_seed

    s, n = ctx.setup, ctx.options.steps
    manual_seed(training_seed(s.spec.seed))
    ctx.trainer = trainer = Trainer(s)
    losses, samples = [], 0
    for step, (x, y) in enumerate(itertools.islice(train_batches(s), n), start=1):
        ctx.deadline.check()
        per_sample, _ = trainer.train_step(x, y)
        trainer.step += 1
        value = float(per_sample.data.double().mean())
        losses.append(value)
        samples += x.shape[0]
        if not math.isfinite(value):
            return Check("", FAIL, f"the loss is {value} at step {step} (the {step - 1} "
                                   f"steps before were finite)", values={"losses": losses})
    return Check("", PASS, f"{n} steps ({samples} samples): loss {losses[0]:.4g} → "
                           f"{losses[-1]:.4g}, all finite", values={"losses": losses})


def overfit_batch(ctx: Context):
    """The first ``overfit_batch`` samples of the first training batch."""
    from trainctl.autodiff import Tensor

    k = ctx.options.overfit_batch
    x, y = ctx.batch
    return Tensor(x.data[:k]), Tensor(y.data[:k])


def _overfit(ctx: Context) -> Check:
    from trainctl.autodiff import no_grad
    from trainctl.train import Trainer

    s, opts = ctx.setup, ctx.options
    s.model.load_state_dict(ctx.initial)
    fresh = type(s.optimizer)(s.model.trainable_variables, s.optimizer.config)
    ctx.trainer = trainer = Trainer(dataclasses.replace(s, optimizer=fresh))
    x, y = overfit_batch(ctx)

    def current() -> float:
        with no_grad():
            return float(batch_loss(s, x, y, training=False).data.double())

    start = current()
    target = opts.overfit_factor * start
    history = [start]
    for step in range(1, opts.overfit_steps + 1):
        ctx.deadline.check()
        trainer.train_step(x, y)
        trainer.step += 1
        history.append(current())
        if not math.isfinite(history[-1]):
            return Check("", FAIL, f"the loss of the batch became {history[-1]} at step {step}",
                         values={"losses": history})
        if history[-1] <= target:
            return Check("", PASS, f"one batch of {x.shape[0]}: loss {start:.4g} → "
                                   f"{history[-1]:.4g} (≤ {opts.overfit_factor:g}×) in {step} "
                                   f"steps", values={"losses": history, "steps": step})
    return Check("", FAIL, f"one batch of {x.shape[0]}: loss {start:.4g} → {history[-1]:.4g} "
                           f"after {opts.overfit_steps} steps, not ≤ {opts.overfit_factor:g}× "
                           f"its start ({target:.4g}): the model cannot fit even one batch "
                           f"(wiring, labels, or a learning rate far too small or too large)",
                 values={"losses": history, "steps": opts.overfit_steps})


def _checkpoint(ctx: Context) -> Check:
    from trainctl.autodiff import no_grad
    from trainctl.graph import build_model
    from trainctl.io import load_checkpoint
    from trainctl.train import Trainer

    s = ctx.setup
    trainer = ctx.trainer or Trainer(s)
    x, _ = ctx.batch
    with tempfile.TemporaryDirectory(prefix="trainctl-smoke-") as tmp:
        path = trainer.save(Path(tmp) / "checkpoint", kind="manual")
        weights, opt_tensors, state = load_checkpoint(path)
    model = build_model(s.spec, s.device)
    model.load_state_dict(weights)
    saved_opt = trainer.setup.optimizer
    opt = type(saved_opt)(model.trainable_variables, saved_opt.config)
    opt.load_state_dict(opt_tensors or {}, state["optimizer"])
    with no_grad():
        before = trainer.setup.model(x, training=False).data
        after = model(x, training=False).data
    if not torch.equal(before, after):
        diff = float((before.double() - after.double()).abs().max())
        return Check("", FAIL, f"the reloaded model's outputs differ (max |Δ| {diff:.3g})",
                     values={"max_abs_diff": diff})
    slots, reloaded = saved_opt.state_dict()[0], opt.state_dict()[0]
    differ = sorted(k for k in slots if k not in reloaded or not torch.equal(
        slots[k].cpu(), reloaded[k].cpu()))
    if differ or set(reloaded) != set(slots):
        return Check("", FAIL, f"the optimizer state differs after reloading: "
                               f"{', '.join(differ) or 'other slots'}")
    return Check("", PASS, f"{len(weights)} weight tensors and {len(slots)} optimizer slots "
                           f"saved and reloaded into a fresh model: identical outputs on "
                           f"{x.shape[0]} samples")


def eval_dataset(setup, batches: int):
    """(split name, its first ``batches`` batches): validation, else test, else train."""
    for name in ("validation", "test", "train"):
        if setup.splits.sizes.get(name, 0) > 0:
            return name, getattr(setup.splits, name).take(batches)
    raise DataError("every split is empty")


def _eval(ctx: Context) -> Check:
    from trainctl.train import evaluate

    name, ds = eval_dataset(ctx.setup, ctx.options.eval_batches)
    result = evaluate(ctx.setup, ds)
    text = "  ".join(f"{k} {v:.4g}" for k, v in result.items())
    bad = [k for k, v in result.items() if not math.isfinite(v)]
    if bad:
        return Check("", FAIL, f"{name}: non-finite {', '.join(bad)} ({text})", values=result)
    return Check("", PASS, f"{name} (first {ctx.options.eval_batches} batches): {text}",
                 values=result)


SMOKE: list[CheckDef] = [
    CheckDef("validate", _validate, "The spec parses and every key means something: a typo "
             "or a value of the wrong type fails here, located by file:line:col.", needs=()),
    CheckDef("build", _build, "train.prepare loads the data, builds every layer on the device "
             "and checks the input shape against the data and the output shape against the "
             "loss and the number of classes.", needs=("spec",)),
    CheckDef("gradients", _gradients, "Every trainable variable must get a gradient from the "
             "loss of one batch: 'detached' means no path from it to the loss (an unused "
             "weight), 'all zero' a dead path (zero-initialised ReLU layers, a stop_gradient, "
             "a saturated activation), 'non-finite' an overflow."),
    CheckDef("steps", _steps, "A few real training steps with the spec's optimizer on the "
             "first batches: a NaN or inf loss means an exploding learning rate, bad inputs "
             "or an unstable loss."),
    CheckDef("overfit", _overfit, "A correctly wired model can memorise one small batch: "
             "from the initial weights the loss of one batch must fall to the given fraction "
             "of its start. If it cannot, the labels, the loss or the learning rate are wrong."),
    CheckDef("checkpoint", _checkpoint, "A checkpoint written by Trainer.save and read back "
             "into a freshly built model gives the same outputs, bit for bit, and the "
             "optimizer state loads: resuming and trainctl eval will see this model."),
    CheckDef("eval", _eval, "train.evaluate scores a few batches of the evaluation split in "
             "evaluation mode: finite loss and metrics."),
]


def smoke_spec(path: str | Path, options: SmokeOptions | None = None) -> SpecReport:
    """Run the :data:`SMOKE` checks on one spec file; never raises for the spec's problems."""
    return run_checks(Path(path), SMOKE, options or SmokeOptions())


def smoke_specs(paths: list[Path], options: SmokeOptions | None = None,
                on_report: Callable[[SpecReport], None] | None = None) -> list[SpecReport]:
    """Smoke every spec of ``paths`` (files, or directories of ``*.yaml``); one failing spec
    does not stop the others. ``on_report`` is called after each spec. Raises TrainctlError
    only for a path that does not exist or a directory without specs."""
    reports = []
    for path in find_specs([Path(p) for p in paths]):
        report = smoke_spec(path, options)
        reports.append(report)
        if on_report is not None:
            on_report(report)
    return reports
