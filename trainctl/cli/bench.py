"""``trainctl bench SPEC``: forward/backward time per layer, step time, samples/s, peak
memory, and with ``--compare-torch`` the ratio to the same model in plain PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import DeviceOption, SetOption, out, say_auto_device, user_errors


def bench_command(
    spec: Path = typer.Argument(..., help="The YAML spec to time."),
    iterations: int = typer.Option(50, "--iterations", "-n", min=1, help="Timed iterations."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Untimed iterations first."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Samples per "
                                             "step (default: the spec's first train batch)."),
    device: DeviceOption = None,
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch intra-op "
                                          "threads (default: torch's choice)."),
    compare_torch: bool = typer.Option(False, "--compare-torch", help="Also time the same "
                                       "model in plain PyTorch, alternately, and print the "
                                       "ratio ours / torch."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    sets: SetOption = [],
) -> None:
    """Time a spec's model like `caffe time`: per layer forward and backward (mean ± std over
    the timed iterations), the whole training step, samples/s and peak memory."""
    with user_errors():
        from trainctl.spec import load_spec

        asked = load_spec(spec, sets).device  # spec errors first, before torch loads
        import torch

        from trainctl.check.bench import bench_spec

        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            report = bench_spec(spec, iterations=iterations, warmup=warmup, device=device,
                                batch_size=batch_size, compare_torch=compare_torch,
                                overrides=sets)
        finally:
            torch.set_num_threads(before)
        say_auto_device(device if device is not None else asked, report.device)
        if as_json:
            typer.echo(json.dumps(report.to_dict()))
        else:
            table, lines = render(report)
            out.print(lines[0], markup=False)
            # a table for logs: at least 120 columns wide rather than folded
            from rich.console import Console

            Console(file=out.file, width=max(out.width, 120), highlight=False).print(table)
            for line in lines[1:]:
                out.print(line, markup=False)


def _ms(timing) -> str:
    """'mean ± std (median)' in ms."""
    if not timing.seconds:
        return "-"
    return f"{timing.mean * 1e3:.3f} ± {timing.std * 1e3:.3f} ({timing.median * 1e3:.3f})"


def _ratio(t: dict, key: str) -> str:
    q1, med, q3 = t[f"{key}_ratio_quartiles"]
    return (f"ratio ours/torch {t[f'{key}_ratio']:.2f} of the means, {med:.2f} "
            f"[{q1:.2f}–{q3:.2f}] per iteration")


def render(report) -> tuple["Table", list[str]]:  # noqa: F821 (rich, imported here)
    """The report as a table (a row per layer and the loss, times in ms) and summary lines."""
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("layer", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("output", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("forward ms", justify="right", no_wrap=True)
    table.add_column("backward ms", justify="right", no_wrap=True)
    for t in report.layers:
        shape = "[" + ",".join("N" if d is None else str(d) for d in t.output_shape) + "]"
        table.add_row(t.name, t.type, shape if t.output_shape else "", f"{t.params:,}",
                      _ms(t.forward), _ms(t.backward))
    fwd = sum(t.forward.mean for t in report.layers) * 1e3
    bwd = sum(t.backward.mean for t in report.layers if t.backward.seconds) * 1e3
    lines = [f"{report.name} on {report.device}: batch {report.batch_size}, "
             f"{report.iterations} iterations after {report.warmup} warm-up, "
             f"{report.threads} thread(s); times in ms: mean ± std (median)",
             f"sum of layers: forward {fwd:.3f}, backward {bwd:.3f}",
             f"forward + loss (taped): {_ms(report.forward)}",
             f"training step (forward, backward, update): {_ms(report.step)}  "
             f"({report.samples_per_second:,.0f} samples/s)"]
    mem = report.memory
    parts = []
    if "cuda_peak_mib" in mem:
        parts.append(f"CUDA peak {mem['cuda_peak_mib']:.1f} MiB per step (allocator peak "
                     f"above the memory allocated before the step)")
    parts.append(f"peak RSS {mem['peak_rss_mib']:.0f} MiB (whole process since it started: "
                 f"interpreter, libraries, data; ru_maxrss)")
    parts.append(f"Python-level allocations peak {mem['python_peak_mib']:.2f} MiB per step "
                 f"(tracemalloc; tensor storage not included)")
    lines.append("memory: " + ", ".join(parts))
    if report.torch is not None:
        t = report.torch
        lines.append(f"torch forward + loss (autograd): {_ms(t['forward'])}; "
                     + _ratio(t, "forward"))
        lines.append(f"torch training step (nn + autograd + optim): {_ms(t['step'])} "
                     f"({t['samples_per_second']:,.0f} samples/s); " + _ratio(t, "step"))
        if "torch_cuda_peak_mib" in mem:
            lines.append(f"torch memory: CUDA peak {mem['torch_cuda_peak_mib']:.1f} MiB per step")
    return table, lines
