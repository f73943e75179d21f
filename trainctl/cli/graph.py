"""``trainctl graph SPEC -o model.svg``: a picture of the model's DAG (.svg, .png, .dot,
.mmd), shapes on the edges; torch-free."""

from __future__ import annotations

from pathlib import Path

import typer

from trainctl.cli.common import SetOption, out, user_errors


def graph_command(
    spec: Path = typer.Argument(..., help="The YAML spec."),
    output: Path = typer.Option(..., "-o", "--output", help="The picture to write: .svg or "
                                ".png (need Graphviz), .dot (Graphviz text) or .mmd (Mermaid)."),
    sets: SetOption = [],
) -> None:
    """Draw the model's graph: inputs, nodes (name, type), the output, shapes on the edges."""
    with user_errors():
        from trainctl.graph.render import render
        from trainctl.spec import Spec, load_doc
        from trainctl.spec.kinds.dag import plan_graph

        doc = load_doc(spec, sets)
        spec_obj = Spec.from_doc(doc)
        render(plan_graph(doc), output, name=spec_obj.name)
    out.print(f"wrote {output}", markup=False)
