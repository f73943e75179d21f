"""``--set KEY=VALUE`` on every command that reads a SPEC: one shared option
(``trainctl.cli.common.SetOption``), applied to the spec before anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from trainctl.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
IRIS = str(ROOT / "specs" / "iris_mlp.yaml")

# argv before the spec, argv after it ({tmp}: the test's folder); expected exit code for
# a bad spec (smoke reports a failed spec with 1, the others, doctor included, a user error 2)
COMMANDS = {
    "train": (["train"], ["--run-dir", "{tmp}/run"], 2),
    "eval": (["eval"], ["--checkpoint", "{tmp}/none"], 2),
    "predict": (["predict"], ["--checkpoint", "{tmp}/none", "--input", "{tmp}/x.csv",
                              "-o", "{tmp}/p.csv"], 2),
    "export": (["export"], ["--checkpoint", "{tmp}/none", "-o", "{tmp}/m.onnx"], 2),
    "validate": (["validate"], [], 2),
    "summary": (["summary"], [], 2),
    "graph": (["graph"], ["-o", "{tmp}/m.dot"], 2),
    "smoke": (["smoke"], ["--json"], 1),
    "doctor": (["doctor"], ["--json"], 2),
    "bench": (["bench"], [], 2),
    "data inspect": (["data", "inspect"], [], 2),
    "data bench": (["data", "bench"], [], 2),
}


def _spec_commands(group, prefix: tuple[str, ...] = ()):
    """``(name, click command)`` of every command whose first argument is a spec."""
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            yield from _spec_commands(cmd, prefix + (name,))
        elif cmd.params and cmd.params[0].name in ("spec", "specs", "paths"):
            yield " ".join(prefix + (name,)), cmd


def test_every_spec_command_has_the_shared_set_option():
    found = dict(_spec_commands(typer.main.get_command(app)))
    assert set(found) == set(COMMANDS), "a new SPEC command: add it to COMMANDS"
    for name, cmd in found.items():
        (option,) = [p for p in cmd.params if "--set" in p.opts]
        assert option.multiple and option.metavar == "KEY=VALUE", name


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_set_is_applied_and_checked_by_every_command(command, tmp_path):
    before, after, code = COMMANDS[command]
    after = [a.replace("{tmp}", str(tmp_path)) for a in after]
    result = CliRunner().invoke(app, [*before, IRIS, *after, "--set", "model.nosuch=1",
                                      "--set", "name=''"])
    text = result.output + (result.stderr if code == 2 else "")
    assert result.exit_code == code, text
    # the value reached the spec (the file's name is valid) and the key was checked
    assert "--set name='': must not be empty" in text
    assert "--set model.nosuch=1: unknown field" in text
    assert sorted(tmp_path.iterdir()) == []  # no run, picture or export left behind


def test_validate_summary_and_data_inspect_use_the_overridden_values(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["validate", IRIS, "--set", "model.layers[1].units=4"])
    assert result.exit_code == 2
    assert "the model outputs shape [4] but sparse_categorical_crossentropy" in result.stderr
    assert runner.invoke(app, ["validate", IRIS, "--set", "model.layers[0].units=5"]).exit_code == 0

    result = runner.invoke(app, ["summary", IRIS, "--set", "model.layers[0].units=7"])
    assert result.exit_code == 0, result.output
    params = (4 * 7 + 7) + (7 * 3 + 3)  # two dense layers: kernel + bias each
    assert f"total params: {params:,}" in result.output

    result = runner.invoke(app, ["data", "inspect", IRIS, "--json", "--set",
                                 "data.split={validation: 0.2, test: 0.5}"])
    assert result.exit_code == 0, result.output
    sizes = {k: v["samples"] for k, v in json.loads(result.stdout)["splits"].items()}
    assert sizes == {"train": 45, "validation": 30, "test": 75}
