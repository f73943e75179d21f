"""``trainctl bench``: where the time of a training step goes, in the manner of
``caffe time``.

Per layer (per node of a ``model.nodes`` DAG, :func:`model_calls`): the forward and backward
time of each node (mean and spread over ``iterations`` after ``warmup`` untimed ones). Each
node runs under its own GradientTape with its inputs watched, so its backward is
``tape_i.gradient(output_i, [*inputs_i, *weights_i], output_gradients=g)`` with ``g`` the
sum of what its readers sent back: the same vector-Jacobian products a whole step
computes, taken one node at a time (public APIs only). Then the whole step
(``Trainer.train_step``: forward, loss, backward, optimizer update) and its samples per
second; peak memory; with ``compare_torch`` the same model in plain PyTorch
(trainctl.check.torch_ref) timed alternately with ours in the same loop, and the ratio
ours / torch. On CUDA every timed region starts and ends with ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from trainctl.errors import DataError


@dataclass
class Timing:
    """Wall-clock seconds of the timed iterations (mean, population std, min, median)."""

    seconds: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds) if self.seconds else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def std(self) -> float:
        return statistics.pstdev(self.seconds) if len(self.seconds) > 1 else 0.0

    def to_dict(self) -> dict[str, float]:
        if not self.seconds:
            return {}
        return {"mean_ms": self.mean * 1e3, "std_ms": self.std * 1e3,
                "min_ms": min(self.seconds) * 1e3,
                "median_ms": self.median * 1e3}


@dataclass
class LayerTiming:
    name: str
    type: str
    output_shape: list
    params: int
    forward: Timing = field(default_factory=Timing)
    backward: Timing = field(default_factory=Timing)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "output_shape": self.output_shape,
                "params": self.params, "forward": self.forward.to_dict(),
                "backward": self.backward.to_dict()}


@dataclass
class BenchReport:
    """Everything ``trainctl bench`` measured; times in seconds (``to_dict``: ms)."""

    spec: str
    name: str
    device: str
    batch_size: int
    iterations: int
    warmup: int
    threads: int
    layers: list[LayerTiming]
    forward: Timing
    step: Timing
    memory: dict[str, float]
    torch: dict[str, Any] | None = None

    @property
    def samples_per_second(self) -> float:
        return self.batch_size / self.step.mean

    def to_dict(self) -> dict[str, Any]:
        out = {"spec": self.spec, "name": self.name, "device": self.device,
               "batch_size": self.batch_size, "iterations": self.iterations,
               "warmup": self.warmup, "threads": self.threads,
               "layers": [t.to_dict() for t in self.layers],
               "forward": self.forward.to_dict(), "step": self.step.to_dict(),
               "samples_per_second": self.samples_per_second, "memory": self.memory}
        if self.torch is not None:
            out["torch"] = {k: v.to_dict() if isinstance(v, Timing) else v
                            for k, v in self.torch.items()}
        return out


def ratio_quartiles(ours: Timing, theirs: Timing) -> list[float]:
    """Quartiles [q1, median, q3] of the per-iteration ratios ours_i / theirs_i (the two were
    timed back to back in iteration i, so a load spike hits both: robust on a busy machine)."""
    ratios = [a / b for a, b in zip(ours.seconds, theirs.seconds)]
    if len(ratios) < 2:
        return ratios * 3
    q = statistics.quantiles(ratios, n=4)
    return [q[0], q[1], q[2]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    _sync(device)
    t0 = time.perf_counter()
    value = fn()
    _sync(device)
    return time.perf_counter() - t0, value


def bench_batch(setup, batch_size: int | None):
    """(x, y) Tensors: the first ``batch_size`` training samples (default: one batch)."""
    import numpy as np

    from trainctl.train.loop import to_tensors

    xs, ys, n = [], [], 0
    for x, y in setup.splits.train.iterate(epoch=0):
        xs.append(x)
        ys.append(y)
        n += len(x)
        if batch_size is None or n >= batch_size:
            break
    if not xs:
        raise DataError("the train split yields no batch")
    if batch_size is not None and n < batch_size:
        raise DataError(f"--batch-size {batch_size}: the train split has only {n} samples")
    k = batch_size or n
    return to_tensors((np.concatenate(xs)[:k], np.concatenate(ys)[:k]), setup.device)


@dataclass
class Call:
    """One node of the model: its layer called on the outputs of ``inputs`` (a chain's
    first layer reads ``"input"``); ``owner`` is False for a node sharing another's layer."""

    name: str
    layer: Any
    inputs: list[str]
    multi_input: bool
    owner: bool = True


def model_calls(model) -> tuple[list[Call], str]:
    """The model's nodes in topological order and the name of the output node: a chain's
    layers one after the other, or a GraphModel's ``plan.nodes``."""
    from trainctl.graph import GraphModel

    if isinstance(model, GraphModel):
        calls = [Call(n.name, model.node_layers[n.name], list(n.inputs), n.multi_input,
                      n.shared_with is None) for n in model.plan.nodes]
        return calls, model.plan.outputs[0]
    calls, prev = [], "input"
    for layer in model.layers:  # a multi-input layer in a chain gets [x] (Layer.__call__)
        calls.append(Call(layer.name, layer, [prev], False))
        prev = layer.name
    return calls, prev


def _feed(model, x) -> dict:
    from trainctl.graph import GraphModel

    return model.feed(x) if isinstance(model, GraphModel) else {"input": x}


def layerwise_pass(setup, x, y, rows: list[LayerTiming] | None) -> dict[str, torch.Tensor]:
    """One forward and backward pass node by node (model_calls), each timed into ``rows``
    (one per node, then the loss); ``rows=None`` runs untimed (warm-up). Each node runs under
    its own tape with fresh copies of its inputs watched; backward goes in reverse order,
    a node's output gradient being the sum over the nodes reading it. Returns the gradient
    of the mean loss for each trainable variable by name (what a whole-model tape gives;
    a shared layer's is the sum over its nodes)."""
    from trainctl.autodiff import GradientTape, Tensor, ops

    dev, model = setup.device, setup.model
    calls, output = model_calls(model)
    values = dict(_feed(model, x))  # model inputs: data, no gradient needed
    data = set(values)
    tapes, ins = [], []
    for i, call in enumerate(calls):
        tape = GradientTape()
        args = [values[s] for s in call.inputs]

        def forward(call=call, tape=tape, args=args):
            with tape:
                for a, s in zip(args, call.inputs):
                    if s not in data:
                        tape.watch(a)
                return call.layer(args if call.multi_input else args[0], training=True)

        seconds, out = _timed(forward, dev)
        if rows is not None:
            rows[i].forward.seconds.append(seconds)
        tapes.append((tape, out))
        ins.append(args)
        values[call.name] = Tensor(out.data)  # readers' tapes start from a fresh input
    loss_tape = GradientTape()
    h = values[output]

    def loss_forward():
        with loss_tape:
            loss_tape.watch(h)
            return ops.mean(setup.loss(y, h))

    seconds, loss = _timed(loss_forward, dev)
    seconds_b, g = _timed(lambda: loss_tape.gradient(loss, h), dev)
    if rows is not None:
        rows[-1].forward.seconds.append(seconds)
        rows[-1].backward.seconds.append(seconds_b)
    upstream: dict[str, Any] = {output: g}
    found: dict[str, torch.Tensor | None] = {}
    for i in reversed(range(len(calls))):
        call, (tape, out) = calls[i], tapes[i]
        g = upstream.pop(call.name, None)
        if g is None:
            continue  # the output does not depend on this node
        names = [s for s in dict.fromkeys(call.inputs) if s not in data]
        tensors = [ins[i][call.inputs.index(s)] for s in names]
        weights = call.layer.trainable_weights
        if not names and not weights:
            continue
        seconds, grads = _timed(lambda: tape.gradient(out, tensors + list(weights),
                                                      output_gradients=g), dev)
        if rows is not None:
            rows[i].backward.seconds.append(seconds)
        for s, gs in zip(names, grads):
            if gs is not None:
                upstream[s] = gs if s not in upstream else upstream[s] + gs
        for w, gw in zip(weights, grads[len(names):]):
            if gw is not None:
                found[w.name] = gw.data if found.get(w.name) is None else found[w.name] + gw.data
            else:
                found.setdefault(w.name, None)
    return found


def _rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def _memory(setup, step: Callable, torch_step: Callable | None) -> dict[str, float]:
    """Peak memory of a step: on CUDA torch's allocator peak (ours, and torch's); on the
    CPU the process's peak resident set (ru_maxrss) and the peak of Python-level
    allocations during one step (tracemalloc; tensor storage is not Python-allocated)."""
    dev = setup.device
    mem: dict[str, float] = {"peak_rss_mib": _rss_mib()}
    if dev.type == "cuda":
        for key, fn in (("cuda_peak_mib", step), ("torch_cuda_peak_mib", torch_step)):
            if fn is None:
                continue
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            fn()
            torch.cuda.synchronize(dev)
            mem[key] = (torch.cuda.max_memory_allocated(dev) - base) / 2**20
    tracemalloc.start()
    try:
        step()
        mem["python_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return mem


def _time_steps(setup, x, y, reference, warmup: int, iterations: int):
    """Time our taped forward + loss and our training step, and the reference's (if any)
    alternately in one loop (who goes first alternates too). Returns ``(ours, theirs)``:
    ``{"forward"|"step": (fn, Timing)}``, ``theirs`` None without a reference."""
    from trainctl.autodiff import GradientTape, ops
    from trainctl.train import Trainer

    trainer = Trainer(setup)

    def our_forward():
        with GradientTape():
            return ops.mean(setup.loss(y, setup.model(x, training=True)))

    ours = {"forward": (our_forward, Timing()),
            "step": (lambda: trainer.train_step(x, y), Timing())}
    theirs = None
    if reference is not None:
        tx, ty = x.data, y.data
        theirs = {"forward": (lambda: reference.forward(tx, ty), Timing()),
                  "step": (lambda: reference(tx, ty), Timing())}
    for it in range(warmup + iterations):
        for key in ("forward", "step"):
            pair = [ours[key]] + ([theirs[key]] if theirs else [])
            for fn, timing in (pair if it % 2 == 0 else pair[::-1]):
                seconds, _ = _timed(fn, setup.device)
                if it >= warmup:
                    timing.seconds.append(seconds)
    return ours, theirs


def bench_spec(path: str | Path, iterations: int = 50, warmup: int = 5,
               device: str | None = None, batch_size: int | None = None,
               compare_torch: bool = False, overrides: Sequence[str] = ()) -> BenchReport:
    """Time the spec's model (see the module docstring). Raises the spec's errors
    (SpecErrors, DataError, DeviceError) and, with ``compare_torch``, TrainctlError for a
    part without a PyTorch translation. ``overrides``: ``--set`` texts for ``load_spec``."""
    from trainctl.backend import manual_seed
    from trainctl.spec import load_spec
    from trainctl.train import prepare
    from trainctl.train.loop import training_seed

    if iterations < 1 or warmup < 0:
        raise ValueError("iterations must be >= 1 and warmup >= 0")
    spec = load_spec(path, overrides)
    setup = prepare(spec, device=device)
    manual_seed(training_seed(spec.seed))
    x, y = bench_batch(setup, batch_size)
    dev, model = setup.device, setup.model
    rows = [LayerTiming(row["name"], row["type"], row["output_shape"], row["params"])
            for row in model.summary()]
    rows.append(LayerTiming("loss", setup.loss.registered_name, [], 0))
    reference = None
    if compare_torch:
        from trainctl.check.torch_ref import TorchStep

        reference = TorchStep(setup)  # same initial weights
    for it in range(warmup + iterations):
        layerwise_pass(setup, x, y, rows if it >= warmup else None)

    ours, theirs = _time_steps(setup, x, y, reference, warmup, iterations)
    report = BenchReport(spec=str(path), name=spec.name, device=str(dev),
                         batch_size=int(x.shape[0]), iterations=iterations, warmup=warmup,
                         threads=torch.get_num_threads(), layers=rows,
                         forward=ours["forward"][1], step=ours["step"][1],
                         memory=_memory(setup, ours["step"][0],
                                        theirs["step"][0] if theirs else None))
    if theirs is not None:
        t_fwd, t_step = theirs["forward"][1], theirs["step"][1]
        report.torch = {"forward": t_fwd, "step": t_step,
                        "forward_ratio": report.forward.mean / t_fwd.mean,
                        "step_ratio": report.step.mean / t_step.mean,
                        "forward_ratio_quartiles": ratio_quartiles(report.forward, t_fwd),
                        "step_ratio_quartiles": ratio_quartiles(report.step, t_step),
                        "samples_per_second": report.batch_size / t_step.mean}
    return report

