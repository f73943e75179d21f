"""The top-level app imports a command's module only when that command runs
(trainctl/cli/lazy.py), and still lists, builds and rejects commands as Typer does."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from trainctl.cli.app import COMMANDS, app

ROOT = Path(__file__).resolve().parent.parent
CLI_SUPPORT = {"trainctl.cli", "trainctl.cli.app", "trainctl.cli.lazy", "trainctl.cli.common"}


def test_validate_imports_only_its_own_command_module():
    code = ("import sys\n"
            "from trainctl.cli.app import app\n"
            "try:\n"
            "    app(sys.argv[1:])\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, sorted(m for m in sys.modules if m.startswith('trainctl.cli')))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, "validate",
                           str(ROOT / "specs" / "iris_mlp.yaml")],
                          capture_output=True, text=True, env=env, timeout=120)
    code_, modules = proc.stdout.splitlines()[-1].split(" ", 1)
    assert code_ == "0", proc.stdout + proc.stderr
    assert set(ast.literal_eval(modules)) == CLI_SUPPORT | {"trainctl.cli.validate"}, modules


def test_every_command_is_built_listed_and_in_the_table_order():
    group = typer.main.get_command(app)
    assert list(group.commands) == list(COMMANDS)
    for name, command in group.commands.items():  # imports every command module
        assert command.name == name and (command.help or "").strip(), name
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    listed = [line.split()[1] for line in result.output.splitlines()
              if len(line.split()) > 1 and line.split()[1] in COMMANDS]
    assert listed == list(COMMANDS), result.output


def test_group_and_unknown_commands():
    runner = CliRunner()
    result = runner.invoke(app, ["ckpt", "--help"])
    assert result.exit_code == 0 and "verify" in result.output and "ls" in result.output
    result = runner.invoke(app, ["valdate", "x.yaml"])
    assert result.exit_code == 2 and "No such command" in result.output, result.output
