"""The spec's ``graph:`` section: validation, ``compiler: inductor`` (fused nodes compiled
by torch.compile: the same losses as eager for 50 steps to 1e-6) and ``cuda_graphs``
(an error on CPU; on CUDA the same losses as eager, captured and replayed); ignored, with a
warning, when ``execution: eager`` comes from the command line."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from trainctl.compile.cudagraphs import split_update
from trainctl.compile.inductor import CompiledKernel, CompilerWarning, inductor_available
from trainctl.errors import SpecErrors
from trainctl.spec import flag_overrides, load_spec
from trainctl.spec.execution import GraphIgnoredWarning
from trainctl.train import Callback, Trainer, prepare

SPECS = Path(__file__).resolve().parent.parent / "specs"


class _Losses(Callback):
    def __init__(self):
        self.values: list[float] = []

    def on_batch_end(self, step, batch_size, loss):
        self.values.append(float(loss.item()))


def _train(spec: str, sets: list[str], steps: int):
    overrides = [f"train.steps={steps}", "train.epochs=null", "schedule=null", "callbacks=[]",
                 *sets]
    setup = prepare(load_spec(SPECS / spec, overrides))
    losses = _Losses()
    Trainer(setup, callbacks=[losses]).fit()
    return np.array(losses.values), setup


def _messages(exc: SpecErrors) -> str:
    return "\n".join(str(e) for e in exc.errors)


@pytest.mark.parametrize("extra, message", [
    ("execution: graph\ngraph: {compiler: inductr}\n", ":{line}:19: graph.compiler: expected one of"),
    ("execution: graph\ngraph: {cuda: true}\n", ":{line}:9: graph.cuda: unknown field"),
    ("execution: eager\ngraph: {compiler: inductor}\n",
     ":{line}:8: graph: graph options apply to execution: graph"),
])
def test_graph_section_is_validated_with_file_line_col(tmp_path, extra, message):
    text = (SPECS / "iris_mlp.yaml").read_text()
    path = tmp_path / "spec.yaml"
    path.write_text(text + extra)
    assert text.endswith("\n") and "execution" not in text
    with pytest.raises(SpecErrors) as info:
        load_spec(path)
    assert f"{path}{message.format(line=text.count(chr(10)) + 2)}" in _messages(info.value)


@pytest.mark.parametrize("execution", ["execution: graph\n", "execution: eager\n", ""])
@pytest.mark.parametrize("override", ["--set", "--execution"])
def test_eager_from_the_command_line_ignores_the_graph_section(tmp_path, execution, override):
    """An ``execution`` override other than graph wins over the file: its ``graph:``
    section is ignored with one warning located at that section (a file that says eager
    itself with a graph: section stays an error: the parametrized test above)."""
    path = tmp_path / "spec.yaml"
    path.write_text((SPECS / "iris_mlp.yaml").read_text() + execution
                    + "graph: {compiler: inductor}\n")
    eager = ["execution=eager"] if override == "--set" else flag_overrides(execution="eager")
    with pytest.warns(GraphIgnoredWarning) as caught:
        spec = load_spec(path, eager)
    assert spec.execution == "eager" and spec.graph is None
    assert len(caught) == 1 and caught[0].filename == str(path)
    assert caught[0].lineno == path.read_text().count("\n")  # the graph: line
    assert f"{override} " in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = load_spec(path, ["execution=graph"])  # graph from the command line: kept
    assert graph.execution == "graph" and graph.graph.compiler == "inductor"
    if not execution:
        with pytest.raises(SpecErrors, match="graph options apply to execution: graph"):
            load_spec(path, ["seed=1"])  # another override: the file's eager still counts


def test_cuda_graphs_on_cpu_is_a_spec_error_naming_the_key(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text((SPECS / "iris_mlp.yaml").read_text() + "execution: graph\ndevice: cpu\n"
                    "graph: {cuda_graphs: true}\n")
    with pytest.raises(SpecErrors) as info:
        prepare(load_spec(path))
    text = _messages(info.value)
    assert "graph.cuda_graphs: CUDA graphs need a CUDA device" in text
    line = path.read_text().count("\n")  # the last line
    assert f"{path}:{line}:22: graph.cuda_graphs: CUDA graphs need" in text


def test_the_step_without_its_update_plus_the_update_is_the_step():
    """What cuda_graphs replays (the step up to the optimizer update) and then runs (the
    update) gives the weights and outputs of the whole traced step: checked on CPU."""
    losses = []
    for split in (False, True):
        _, setup = _train("iris_mlp.yaml", ["device=cpu", "execution=graph"], 1)
        from trainctl.train.loop import to_tensors
        x, y = to_tensors(next(iter(setup.splits.train)), setup.device)
        concrete = setup.graph.train.trace(x, y, False)
        if split:
            body_graph, update = split_update(concrete.optimized)
            assert update is not None and body_graph.outputs[-1] in update.inputs
            from trainctl.compile.cudagraphs import CudaGraphStep
            step = CudaGraphStep(concrete.optimized)
            outs = step._finish(step.body([x.data, y.data]))
        else:
            outs = concrete.run([x.data, y.data])
        losses.append((outs[0].clone(), [v.numpy().copy() for v in setup.model.variables]))
    torch.testing.assert_close(losses[1][0], losses[0][0], rtol=0, atol=0)
    for a, b in zip(losses[0][1], losses[1][1]):
        np.testing.assert_array_equal(b, a)


@pytest.mark.slow  # compiling the fused nodes takes 10-60 s on 2 busy cores
def test_inductor_compiles_fused_nodes_and_matches_eager_for_50_steps():
    eager, _ = _train("digits_mlp.yaml", ["device=cpu", "execution=eager"], 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph, setup = _train("digits_mlp.yaml", ["device=cpu", "execution=graph",
                                                   "graph.compiler=inductor"], 50)
    np.testing.assert_allclose(graph, eager, rtol=1e-6, atol=0)
    kernels = [n.fn for c in setup.graph.train.concrete.values() for n in c.optimized.nodes
               if n.op == "fused_elementwise"]
    reason = inductor_available()
    if reason is None:  # a working toolchain: the fused nodes ran compiled
        assert kernels and all(isinstance(k, CompiledKernel) and k.failed is None
                               for k in kernels)
    else:  # none: one clear warning, the same numbers uncompiled
        assert [w for w in caught if issubclass(w.category, CompilerWarning)]


@pytest.mark.cuda
def test_cuda_graph_replay_matches_eager_for_50_steps():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    sets = ["device=cuda", "precision=fp32"]
    eager, _ = _train("digits_mlp.yaml", [*sets, "execution=eager"], 50)
    graph, setup = _train("digits_mlp.yaml", [*sets, "execution=graph",
                                              "graph.cuda_graphs=true"], 50)
    np.testing.assert_allclose(graph, eager, rtol=1e-6, atol=0)
    steps = list(setup.graph.captured.values())
    # the full batches' step: traced once, 2 warm-up runs, then captured and replayed
    assert steps and steps[0].captures == 1 and steps[0].calls >= 45
