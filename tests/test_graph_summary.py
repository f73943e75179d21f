"""``trainctl summary`` and ``trainctl graph``: parameter counts, FLOPs and the memory
estimate of a small dense and a small conv model against hand counts; DOT and Mermaid text
(nodes, edges, shapes); .svg without Graphviz is a clear error that writes nothing."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.graph import build_model, spec_doc
from trainctl.graph.render import RenderError, render, to_dot, to_mermaid
from trainctl.graph.summary import available_memory, summarize
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.kinds.dag import plan_graph

HEAD = "name: s\ndata:\n  source: {type: blobs}\n  batch_size: 8\nmodel:\n"
TAIL = "loss: {type: sparse_categorical_crossentropy, from_logits: true}\noptimizer: adam\n"
DENSE = """\
  input_shape: [4]
  layers:
    - {type: dense, units: 3, activation: relu}
    - {type: dense, units: 2}
"""
CONV = """\
  inputs: [{name: img, shape: [1, 8, 8]}]
  nodes:
    - {name: conv, type: conv2d, filters: 2, kernel_size: 3, padding: same}
    - {name: bn, type: batch_normalization}
    - {name: flat, type: flatten}
    - {name: head, type: dense, units: 10}
"""
WIDE = """\
  inputs:
    - {name: a, shape: [3], columns: [0, 3]}
    - {name: b, shape: [2], columns: [3, 5]}
  nodes:
    - {name: da, type: dense, units: 4, inputs: a}
    - {name: db, type: dense, units: 4, inputs: b}
    - {name: db2, type: dense, inputs: db, shared_with: da2}
    - {name: da2, type: dense, units: 4, inputs: db}
    - {name: sum, type: add, inputs: [da, db2, da2]}
"""


def spec(model: str) -> Spec:
    return Spec.from_doc(SpecDoc.from_text(HEAD + model + TAIL, file="s.yaml"))


def summary_of(model: str, batch_size: int = 8, slots: int = 2):
    s = spec(model)
    return summarize(build_model(s), plan_graph(spec_doc(s)), batch_size, slots)


def test_dense_counts_by_hand():
    r = summary_of(DENSE)
    assert [(row.name, row.params, row.flops) for row in r.rows] == [
        ("dense", 4 * 3 + 3, 2 * 4 * 3 + 3), ("dense_1", 3 * 2 + 2, 2 * 3 * 2 + 2)]
    assert (r.trainable, r.non_trainable) == (23, 0)
    assert r.flops_per_step == 3 * 8 * (27 + 14)
    assert r.memory == {"parameters": 23 * 4, "gradients": 23 * 4, "optimizer slots": 2 * 23 * 4,
                        "activations": 8 * 4 * (4 + 3 + 2)}


def test_conv_counts_by_hand():
    r = summary_of(CONV, batch_size=5, slots=1)
    rows = {row.name: row for row in r.rows}
    assert rows["conv"].params == 2 * 1 * 3 * 3 + 2 and rows["conv"].output_shape == (2, 8, 8)
    assert rows["conv"].flops == 2 * (2 * 9) * 64 + 2 * 64  # kernel·positions, + bias
    assert (rows["bn"].params, rows["bn"].trainable) == (4 * 2, 2 * 2)  # gamma, beta; moving ×2
    assert rows["bn"].flops == 4 * 128 and rows["flat"].flops == 0
    assert rows["head"].params == 128 * 10 + 10 and rows["head"].flops == 2 * 128 * 10 + 10
    assert (r.trainable, r.non_trainable) == (20 + 4 + 1290, 4)
    assert r.flops_per_step == 3 * 5 * (2432 + 512 + 0 + 2570)
    assert r.memory["gradients"] == 4 * 1314 and r.memory["optimizer slots"] == 4 * 1314
    assert r.memory["activations"] == 5 * 4 * (64 + 128 + 128 + 128 + 10)


def test_shared_node_counts_no_parameters_but_its_flops():
    r = summary_of(WIDE)
    rows = {row.name: row for row in r.rows}
    assert (rows["db2"].params, rows["da2"].params) == (0, 20)
    assert rows["db2"].flops == rows["da2"].flops == 2 * 4 * 4 + 4
    assert r.trainable == 16 + 12 + 20


def test_available_memory_of_the_cpu_reads_meminfo():
    with open("/proc/meminfo", encoding="ascii") as f:
        line = next(x for x in f if x.startswith("MemAvailable:"))
    want = int(line.split()[1]) * 1024
    import torch

    got = available_memory(torch.device("cpu"))
    assert abs(got - want) < 0.2 * want  # memory moves between the two reads


def test_summary_command_prints_table_totals_and_warns_when_too_big(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + DENSE + TAIL)
    result = CliRunner().invoke(app, ["summary", str(path)])
    assert result.exit_code == 0, result.output
    assert "dense_1" in result.output and "[None,2]" in result.output
    assert "total params: 23  trainable: 23  non-trainable: 0" in result.output
    assert "warning" not in result.output
    big = HEAD + DENSE.replace("units: 3,", "units: 200000,") + TAIL
    path.write_text(big)
    result = CliRunner().invoke(app, ["summary", str(path), "--batch-size", "4000000"])
    assert result.exit_code == 0, result.output
    assert "does not fit" in result.output


def test_dot_and_mermaid_text():
    plan = plan_graph(spec_doc(spec(WIDE)))
    dot = to_dot(plan, "s")
    for line in ['"a" [shape=ellipse, label="a\\ninput"];',
                 '"db2" [shape=box, label="db2\\ndense\\nshares da2"];',
                 '"a" -> "da" [label="[N,3]"];', '"b" -> "db" [label="[N,2]"];',
                 '"db2" -> "sum" [label="[N,4]"];', '"sum" -> "__output__" [label="[N,4]"];',
                 '"da2" -> "db2" [style=dashed, arrowhead=none, label="shared"];']:
        assert f"  {line}\n" in dot, line
    assert dot.count(" -> ") == 9 and dot.startswith('digraph "s" {')
    mmd = to_mermaid(plan)
    assert mmd.splitlines()[:3] == ["flowchart TD", '  n0(["a<br/>input"])', '  n1(["b<br/>input"])']
    for line in ['n0 -->|"[N,3]"| n2', 'n3 -->|"[N,4]"| n4', 'n6 -->|"[N,4]"| n7',
                 'n4["da2<br/>dense"]', 'n5["db2<br/>dense<br/>shares da2"]', 'n4 -.-|shared| n5']:
        assert f"  {line}\n" in mmd, line
    assert mmd.count("-->") == 8


@pytest.mark.skipif(shutil.which("dot") is not None, reason="graphviz is installed")
def test_svg_without_graphviz_is_a_clear_error_and_writes_nothing(tmp_path):
    plan = plan_graph(spec_doc(spec(DENSE)))
    with pytest.raises(RenderError, match=r"needs Graphviz .*write m.dot or m.mmd instead"):
        render(plan, tmp_path / "m.svg")
    with pytest.raises(RenderError, match="unknown picture format '.jpg'"):
        render(plan, tmp_path / "m.jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_svg_and_png_through_dot(tmp_path):
    import xml.etree.ElementTree as ET

    from PIL import Image

    plan = plan_graph(spec_doc(spec(DENSE)))
    render(plan, tmp_path / "m.svg", name="s")
    root = ET.fromstring((tmp_path / "m.svg").read_bytes())
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    assert {"dense", "input", "output", "[N,3]"} <= texts, texts
    render(plan, tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG" and im.size[0] > 50 and im.size[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "m.svg"]


def test_graph_command_writes_dot(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + DENSE + TAIL)
    result = CliRunner().invoke(app, ["graph", str(path), "-o", str(tmp_path / "m.dot"),
                                      "--set", "model.layers[1].units=5"])
    assert result.exit_code == 0, result.output
    assert '"dense_1" -> "__output__" [label="[N,5]"];' in (tmp_path / "m.dot").read_text()


def test_available_memory_of_cuda_asks_torch(monkeypatch):
    import torch

    asked = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev: asked.append(dev) or (123, 456))
    assert available_memory(torch.device("cuda", 0)) == 123 and asked == [torch.device("cuda", 0)]
    assert available_memory(torch.device("meta")) is None
