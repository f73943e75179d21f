"""The ``trainctl`` command: composes one module per command."""

from __future__ import annotations

import typer

from trainctl.cli.lazy import lazy_group

# name: (module, attribute), in --help order (commands, then groups, as Typer lists them); a command's module is imported when it is used
COMMANDS = {
    "train": ("trainctl.cli.train", "train"),
    "eval": ("trainctl.cli.eval", "evaluate_command"),
    "export": ("trainctl.cli.export", "export_command"),
    "predict": ("trainctl.cli.predict", "predict_command"),
    "smoke": ("trainctl.cli.smoke", "smoke_command"),
    "doctor": ("trainctl.cli.doctor", "doctor_command"),
    "bench": ("trainctl.cli.bench", "bench_command"),
    "validate": ("trainctl.cli.validate", "validate_command"),
    "schema": ("trainctl.cli.schema", "schema_command"),
    "summary": ("trainctl.cli.summary", "summary_command"),
    "graph": ("trainctl.cli.graph", "graph_command"),
    "plot": ("trainctl.cli.plot", "plot_command"),
    "ckpt": ("trainctl.cli.ckpt", "ckpt_app"),
    "data": ("trainctl.cli.data", "data_app"),
    "runs": ("trainctl.cli.runs", "runs_app"),
}

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=lazy_group(COMMANDS), help="Train neural networks from a YAML spec.")


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
