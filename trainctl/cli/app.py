"""The ``trainctl`` command: composes one module per command."""

from __future__ import annotations

import typer

from trainctl.cli.ckpt import ckpt_app
from trainctl.cli.eval import evaluate_command
from trainctl.cli.train import train

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train neural networks from a YAML spec.")
app.command("train")(train)
app.command("eval")(evaluate_command)
app.add_typer(ckpt_app, name="ckpt")


def main() -> None:
    app()
