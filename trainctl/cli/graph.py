"""``trainctl graph SPEC -o model.svg``: a picture of the model's DAG (.svg, .png, .dot,
.mmd), shapes on the edges; torch-free. ``--ir``: the traced training (or evaluation)
step of graph mode instead, as IR text, generated Python (``--python``) or DOT (``-o x.dot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import SetOption, out, user_errors


def graph_command(
    spec: Path = typer.Argument(..., help="The YAML spec."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="The picture to write: "
                                          ".svg or .png (need Graphviz), .dot (Graphviz text) "
                                          "or .mmd (Mermaid); with --ir: .dot or text."),
    sets: SetOption = [],
    ir: bool = typer.Option(False, "--ir", help="The traced step of graph mode (IR) instead "
                            "of the model's DAG; printed unless -o is given."),
    after: Optional[str] = typer.Option(None, "--after", metavar="PASS", help="With --ir: the "
                                        "IR after this pass ('traced': before any; default: "
                                        "after all)."),
    step: str = typer.Option("train", "--step", help="With --ir: train or eval."),
    python: bool = typer.Option(False, "--python", help="With --ir: print the generated "
                                "Python instead of the IR."),
) -> None:
    """Draw the model's graph: inputs, nodes (name, type), the output, shapes on the edges;
    or (--ir) show the traced, optimised training step that graph mode runs."""
    if ir:
        return _ir(spec, output, sets, after, step, python)
    with user_errors():
        if output is None:
            from trainctl.errors import TrainctlError
            raise TrainctlError("graph: give -o FILE (a picture of the model) or --ir")
        from trainctl.graph.render import render
        from trainctl.spec import Spec, load_doc
        from trainctl.spec.kinds.dag import plan_graph

        doc = load_doc(spec, sets)
        spec_obj = Spec.from_doc(doc)
        render(plan_graph(doc), output, name=spec_obj.name)
    out.print(f"wrote {output}", markup=False)


def _ir(spec: Path, output: Optional[Path], sets: list[str], after: Optional[str], step: str,
        python: bool) -> None:
    with user_errors():
        from trainctl.errors import TrainctlError
        from trainctl.spec import load_spec

        if step not in ("train", "eval"):
            raise TrainctlError(f"--step: expected train or eval, got {step!r}")
        s = load_spec(spec, sets)
        from trainctl.compile.ir import to_dot
        from trainctl.check.results import write_atomic
        from trainctl.train import prepare
        from trainctl.train.graph_step import traced_step

        graph, source = traced_step(prepare(s), step, after)
        text = source if python else graph.format() + "\n"
        if output is None:
            out.print(text, markup=False, highlight=False, end="")
            return
        write_atomic(output, to_dot(graph) if output.suffix == ".dot" else text)
    out.print(f"wrote {output}", markup=False)
