"""The CLI of graph mode: ``trainctl graph --ir``, ``train``/``eval --execution``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.spec.execution import GraphIgnoredWarning

SPEC = str(Path(__file__).resolve().parent.parent / "specs" / "iris_mlp.yaml")
runner = CliRunner()


def test_graph_ir_prints_the_optimised_training_step():
    res = runner.invoke(app, ["graph", SPEC, "--ir", "--set", "device=cpu"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("graph train_step")
    assert "addmm" in res.output and "free(" in res.output
    assert "optimizer_update" in res.output or "adam_fused" in res.output
    traced = runner.invoke(app, ["graph", SPEC, "--ir", "--after", "traced", "--set", "device=cpu"])
    assert traced.exit_code == 0 and "matmul_nd" in traced.output and "free(" not in traced.output
    assert "addmm" not in traced.output


def test_graph_ir_python_of_the_eval_step_and_a_dot_file(tmp_path):
    res = runner.invoke(app, ["graph", SPEC, "--ir", "--python", "--step", "eval",
                              "--set", "device=cpu"])
    assert res.exit_code == 0, res.output
    assert "def run(inputs):" in res.output and "optimizer" not in res.output
    res = runner.invoke(app, ["graph", SPEC, "--ir", "-o", str(tmp_path / "ir.dot"),
                              "--set", "device=cpu"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ir.dot").read_text().startswith('digraph "train_step"')


def test_graph_ir_unknown_pass_is_one_error_line():
    res = runner.invoke(app, ["graph", SPEC, "--ir", "--after", "nope", "--set", "device=cpu"])
    assert res.exit_code == 2
    assert "unknown pass 'nope'" in res.output and "Traceback" not in res.output


INDUCTOR = ["--set", "device=cpu", "--set", "execution=graph", "--set", "graph.compiler=inductor"]


def test_graph_ir_runs_the_passes_of_training_with_compiler_inductor(monkeypatch):
    """``--ir`` traces with the pass list that training uses for the spec's ``graph:``
    section: with ``compiler: inductor`` that list has ``inductor`` after ``fuse_elementwise``."""
    res = runner.invoke(app, ["graph", SPEC, "--ir", "--after", "nope", *INDUCTOR])
    assert res.exit_code == 2
    assert "fuse_elementwise, inductor, foreach_optimizer" in res.output
    plain = runner.invoke(app, ["graph", SPEC, "--ir", "--after", "nope", "--set", "device=cpu"])
    assert "fuse_elementwise, foreach_optimizer" in plain.output and "inductor" not in plain.output
    import trainctl.compile
    from trainctl.train.graph_step import GraphSteps
    seen = []
    real = trainctl.compile.run_passes
    monkeypatch.setattr(trainctl.compile, "run_passes",
                        lambda graph, names: seen.append(tuple(names)) or real(graph, names))
    res = runner.invoke(app, ["graph", SPEC, "--ir", "--after", "inductor", *INDUCTOR])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("graph train_step")
    from trainctl.spec import load_spec
    from trainctl.train import prepare
    training = GraphSteps(prepare(load_spec(SPEC, INDUCTOR[1::2]))).train.passes
    assert "inductor" in training
    assert seen == [training[:training.index("inductor") + 1]]


def _losses(run: Path) -> list[float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["loss"] for x in lines if json.loads(x).get("kind") == "epoch"]


def test_train_with_execution_graph_records_the_eager_losses(tmp_path):
    runs = {}
    for mode in ("eager", "graph"):
        runs[mode] = tmp_path / mode
        res = runner.invoke(app, ["train", SPEC, "--execution", mode, "--epochs", "2", "--quiet",
                                  "--run-dir", str(runs[mode]), "--set", "device=cpu"])
        assert res.exit_code == 0, res.output
    assert _losses(runs["graph"]) == pytest.approx(_losses(runs["eager"]), rel=1e-6)
    res = runner.invoke(app, ["eval", SPEC, "--checkpoint", str(runs["graph"]),
                              "--execution", "graph", "--json"])
    assert res.exit_code == 0, res.output
    graph_eval = json.loads(res.stdout.strip().splitlines()[-1])
    res = runner.invoke(app, ["eval", SPEC, "--checkpoint", str(runs["graph"]), "--json"])
    assert json.loads(res.stdout.strip().splitlines()[-1])["loss"] == \
        pytest.approx(graph_eval["loss"], rel=1e-6)


def test_unknown_execution_is_a_spec_error(tmp_path):
    res = runner.invoke(app, ["train", SPEC, "--execution", "turbo", "--run-dir",
                              str(tmp_path / "r")])
    assert res.exit_code == 2 and "execution" in res.output
    assert not (tmp_path / "r").exists()


def test_execution_eager_on_the_command_line_wins_over_the_graph_section(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(f"base: {SPEC}\nexecution: graph\ngraph: {{compiler: inductor}}\n")
    with pytest.warns(GraphIgnoredWarning) as caught:
        res = runner.invoke(app, ["validate", str(path), "--set", "execution=eager"])
    assert res.exit_code == 0, res.output
    assert len(caught) == 1
    run = tmp_path / "run"
    with pytest.warns(GraphIgnoredWarning) as caught:
        res = runner.invoke(app, ["train", str(path), "--execution", "eager", "--epochs", "1",
                                  "--quiet", "--run-dir", str(run), "--set", "device=cpu"])
    assert res.exit_code == 0, res.output
    assert len(caught) == 1 and "--execution eager" in str(caught[0].message)
    assert "execution: eager" in (run / "spec.yaml").read_text()
    assert "compiler: inductor" not in (run / "spec.yaml").read_text()
    with pytest.warns(GraphIgnoredWarning):
        res = runner.invoke(app, ["eval", str(path), "--checkpoint", str(run), "--execution",
                                  "eager", "--json"])
    assert res.exit_code == 0, res.output
    path.write_text(f"base: {SPEC}\nexecution: eager\ngraph: {{compiler: inductor}}\n")
    res = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "graph options apply to execution: graph" in res.output
    assert not (tmp_path / "r2").exists()
