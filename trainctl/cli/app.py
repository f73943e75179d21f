"""The ``trainctl`` command: composes one module per command."""

from __future__ import annotations

import typer

from trainctl.cli.bench import bench_command
from trainctl.cli.ckpt import ckpt_app
from trainctl.cli.doctor import doctor_command
from trainctl.cli.data import data_app
from trainctl.cli.eval import evaluate_command
from trainctl.cli.export import export_command
from trainctl.cli.graph import graph_command
from trainctl.cli.plot import plot_command
from trainctl.cli.predict import predict_command
from trainctl.cli.runs import runs_app
from trainctl.cli.smoke import smoke_command
from trainctl.cli.summary import summary_command
from trainctl.cli.schema import schema_command
from trainctl.cli.train import train
from trainctl.cli.validate import validate_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train neural networks from a YAML spec.")
app.command("train")(train)
app.command("eval")(evaluate_command)
app.command("export")(export_command)
app.command("predict")(predict_command)
app.command("smoke")(smoke_command)
app.command("doctor")(doctor_command)
app.command("bench")(bench_command)
app.command("validate")(validate_command)
app.command("schema")(schema_command)
app.command("summary")(summary_command)
app.command("graph")(graph_command)
app.add_typer(ckpt_app, name="ckpt")
app.add_typer(data_app, name="data")
app.command("plot")(plot_command)
app.add_typer(runs_app, name="runs")


def _version(value: bool) -> None:
    if value:
        import trainctl

        typer.echo(f"trainctl {trainctl.__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")) -> None:
    """Train neural networks from a YAML spec."""


def main() -> None:
    app()
