"""``trainctl summary SPEC``: the model's table (Keras' model.summary), parameter totals,
FLOPs per training step and a memory estimate against the device's free memory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import DeviceOption, SetOption, err, out, say_auto_device, user_errors


def summary_command(
    spec: Path = typer.Argument(..., help="The YAML spec."),
    sets: SetOption = [],
    device: DeviceOption = None,
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Batch size of "
                                             "the estimate (default: the spec's)."),
) -> None:
    """Print the model's layers, parameters, FLOPs per step and memory estimate; warn when
    the estimate does not fit the device. Reads no data."""
    with user_errors():
        from trainctl.backend import resolve_device
        from trainctl.graph import build_model, spec_doc
        from trainctl.graph.summary import available_memory, human, summarize
        from trainctl.optim import optimizers
        from trainctl.spec import load_spec
        from trainctl.spec.kinds.dag import plan_graph

        s = load_spec(spec, sets)
        dev = resolve_device(device if device is not None else s.device)
        doc = spec_doc(s)
        plan = plan_graph(doc)
        model = build_model(s, dev)
        say_auto_device(device if device is not None else s.device, dev)
        opt_cls = optimizers.get(s.optimizer["type"])
        exclude = () if "type" in opt_cls.Config.model_fields else ("type",)
        opt_cfg = doc.validate(opt_cls.Config, ("optimizer",), exclude=exclude)
        slots = len(opt_cls.slot_names(opt_cfg)) + int(bool(getattr(opt_cfg, "use_ema", False)))
        result = summarize(model, plan, batch_size or spec_batch_size(s), slots)
    from rich.table import Table

    table = Table(title=f"model {s.name!r}", title_justify="left")
    for col, just in (("node", "left"), ("type", "left"), ("output shape", "left"),
                      ("params", "right"), ("inputs", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for r in result.rows:
        inputs = ", ".join(r.inputs) + (f" (shares {r.shared_with})" if r.shared_with else "")
        table.add_row(r.name, r.type, "[" + ",".join(["None", *map(str, r.output_shape)]) + "]",
                      f"{r.params:,}", inputs)
    out.print(table)
    out.print(f"total params: {result.total_params:,}  trainable: {result.trainable:,}  "
              f"non-trainable: {result.non_trainable:,}", markup=False)
    out.print(f"FLOPs per training step (batch {result.batch_size}, forward + backward ≈ 3 × "
              f"forward): {human(result.flops_per_step, '')}FLOP", markup=False)
    parts = ", ".join(f"{k} {human(v)}" for k, v in result.memory.items())
    out.print(f"memory estimate: {human(result.total_memory)} ({parts})", markup=False)
    free = available_memory(dev)
    if free is not None:
        out.print(f"free on {dev}: {human(free)}", markup=False)
        if result.total_memory > free:
            err.print(f"warning: the estimate ({human(result.total_memory)}) does not fit the "
                      f"{human(free)} free on {dev}: lower the batch size or the model's size",
                      markup=False)


def spec_batch_size(spec) -> int:
    """The training batch size the spec asks for: the train section's ``batch`` step, or
    ``data.batch_size``."""
    section = spec.data.train
    for step in (section.steps if section is not None else []):
        if step.get("type") in ("batch", "padded_batch") and isinstance(step.get("batch_size"), int):
            return step["batch_size"]
    return spec.data.batch_size
