"""Model DAGs (``model.inputs`` / ``nodes`` / ``outputs``): the torch-free plan (order,
shapes, every graph error located at its node), the built GraphModel against hand-written
torch (forward, weight sharing and its summed gradient via torch.autograd as the oracle),
inputs as a dict, a tuple or sliced columns, and ``--set model.nodes.NAME.key``."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.errors import ShapeError, SpecErrors
from trainctl.graph import GraphModel, build_model
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.kinds import layer_kinds
from trainctl.spec.kinds.dag import plan_graph

HEAD = """\
name: t
data:
  source: {type: blobs}
model:
"""
TAIL = """\
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: adam
"""
needs_merge = pytest.mark.skipif("concatenate" not in layer_kinds.names(),
                                 reason="merge layers not registered yet")


def text(model: str) -> str:
    return HEAD + model + TAIL


def doc(model: str, overrides=()) -> SpecDoc:
    d = SpecDoc.from_text(text(model), file="t.yaml")
    return d.with_overrides(overrides) if overrides else d


def errors(model: str) -> list[str]:
    with pytest.raises(SpecErrors) as info:
        plan_graph(doc(model))
    return [str(e) for e in info.value.errors]


def line_of(model: str, needle: str) -> int:
    hits = [i + 1 for i, line in enumerate(text(model).splitlines()) if needle in line]
    assert len(hits) == 1, hits
    return hits[0]


SHARED = """\
  inputs: [{name: x, shape: [4]}]
  nodes:
    - {name: d1, type: dense, units: 4, activation: tanh}
    - {name: d2, type: dense, shared_with: d1}
    - {name: out, type: dense, units: 3, inputs: [d2]}
"""


def test_chain_is_read_as_a_graph():
    plan = plan_graph(doc("  input_shape: [5]\n  layers:\n    - {type: dense, units: 7}\n"
                          "    - {type: dense, units: 2}\n"))
    assert plan.chain and [i.name for i in plan.inputs] == ["input"]
    assert [(n.name, n.inputs, n.input_shapes, n.output_shape) for n in plan.nodes] == [
        ("dense", ["input"], [(5,)], (7,)), ("dense_1", ["dense"], [(7,)], (2,))]
    assert plan.outputs == ["dense_1"] and plan.data_shape == (5,)


def test_nodes_are_sorted_and_inputs_default_to_the_previous_node():
    plan = plan_graph(doc("""\
  inputs: [{name: x, shape: [6]}]
  outputs: c
  nodes:
    - {name: c, type: dense, units: 2, inputs: b}
    - {name: a, type: dense, units: 5, inputs: x}
    - {name: b, type: dense, units: 3}
"""))
    assert [n.name for n in plan.nodes] == ["a", "b", "c"]
    assert plan.node("b").inputs == ["a"] and plan.node("b").input_shapes == [(5,)]
    assert plan.output_shape == (2,)


def test_shared_weights_forward_and_summed_gradient_match_torch():
    tc.manual_seed(0)
    model = build_model(Spec.from_doc(doc(SHARED)))
    assert isinstance(model, GraphModel)
    assert [v.name for v in model.variables] == ["d1/kernel", "d1/bias", "out/kernel", "out/bias"]
    assert [r["params"] for r in model.summary()] == [20, 0, 15]
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    w, b, wo, bo = (v.data.clone().requires_grad_(True) for v in model.variables)
    want = torch.tanh(torch.tanh(x @ w + b) @ w + b) @ wo + bo  # d1 applied twice
    with tc.GradientTape() as tape:
        got = model(tc.tensor(x))
        loss = tc.ops.sum(got * got)
    torch.testing.assert_close(got.data, want.detach(), rtol=1e-6, atol=1e-6)
    grads = tape.gradient(loss, model.trainable_variables)
    oracle = torch.autograd.grad((want * want).sum(), [w, b, wo, bo])
    for g, o in zip(grads, oracle):
        torch.testing.assert_close(g.data, o, rtol=1e-5, atol=1e-6)


def test_shared_with_needs_the_same_input_shape_and_type():
    model = SHARED.replace("units: 4, activation: tanh", "units: 6")
    (msg,) = errors(model)
    assert f"t.yaml:{line_of(model, 'name: d2')}:7: model.nodes[1]:" in msg
    assert "'d1' (line" in msg and "gives [6]" in msg and "built for input [4]" in msg
    (msg,) = errors(SHARED.replace("{name: d2, type: dense", "{name: d2, type: dropout"))
    assert "node 'd2' (dropout) cannot share the weights of 'd1' (dense)" in msg
    (msg,) = errors(SHARED.replace("shared_with: d1}", "shared_with: d1, units: 2}"))
    assert "model.nodes[1].units: a node with shared_with takes the options of 'd1'" in msg


def test_duplicate_and_unknown_names_are_all_reported_at_their_nodes():
    model = """\
  inputs: [{name: x, shape: [4]}]
  outputs: out
  nodes:
    - {name: a, type: dense, units: 3, inputs: x}
    - {name: a, type: dense, units: 3, inputs: x}
    - {name: b, type: dense, units: 3, inputs: aa}
    - {name: out, type: dense, units: 2, inputs: b}
"""
    assert errors(model) == [
        "t.yaml:9:14: model.nodes[1].name: name 'a' is already used (line 8)",
        "t.yaml:10:48: model.nodes[2].inputs: unknown node or input 'aa'; did you mean 'a'?"]
    dup_input = "  inputs: [{name: x, shape: [4]}]\n  nodes:\n    - {name: x, type: dense, units: 2}\n"
    assert errors(dup_input) == ["t.yaml:7:14: model.nodes[0].name: name 'x' is already used (line 5)"]


def test_unused_node_and_input():
    unused = """\
  inputs: [{name: x, shape: [4]}, {name: z, shape: [2]}]
  outputs: b
  nodes:
    - {name: a, type: dense, units: 4, inputs: x}
    - {name: dead, type: dense, units: 4, inputs: x}
    - {name: b, type: dense, units: 4, inputs: a}
"""
    assert errors(unused) == [
        "t.yaml:5:35: model.inputs[1]: input 'z' is unused: no node reads it",
        "t.yaml:9:7: model.nodes[1]: node 'dead' is unused: no output depends on it"]


def test_cycle_is_reported_at_each_of_its_nodes():
    cycle = """\
  inputs: [{name: x, shape: [4]}]
  outputs: c
  nodes:
    - {name: a, type: dense, units: 4, inputs: [c]}
    - {name: b, type: dense, units: 4, inputs: a}
    - {name: c, type: dense, units: 4, inputs: b}
"""
    got = errors(cycle)
    assert [e.split(": ", 2)[1] for e in got] == [
        "model.nodes[0].inputs", "model.nodes[1].inputs", "model.nodes[2].inputs"]
    assert all("is on a cycle (nodes a → b → c)" in e for e in got)


def test_shape_mismatch_names_both_nodes_lines_and_shapes():
    ok = """\
  inputs: [{name: x, shape: [2, 3]}]
  nodes:
    - {name: f, type: flatten}
    - {name: d, type: dense, units: 5}
    - {name: out, type: dense, units: 2, inputs: d}
"""
    plan = plan_graph(doc(ok))
    assert plan.output_shape == (2,) and plan.node("d").input_shapes == [(6,)]
    bad = """\
  inputs: [{name: x, shape: [2, 3]}]
  nodes:
    - {name: d, type: dense, units: 5}
    - {name: f, type: flatten, inputs: d}
    - {name: e, type: dense, inputs: f, shared_with: d}
"""
    assert errors(bad) == [
        "t.yaml:9:7: model.nodes[2]: node 'e' (dense) cannot take its input: 'f' (line 8) gives "
        "[10]: it shares the weights of 'd' (line 7), built for input [2,3]"]


@needs_merge
def test_concatenate_two_branches_forward_matches_torch_and_mismatch_is_located():
    model = """\
  inputs:
    - {name: a, shape: [3], columns: [0, 3]}
    - {name: b, shape: [2], columns: [3, 5]}
  nodes:
    - {name: da, type: dense, units: 4, inputs: a}
    - {name: db, type: dense, units: 2, inputs: b}
    - {name: j, type: concatenate, inputs: [da, db]}
    - {name: out, type: dense, units: 3, inputs: j}
"""
    plan = plan_graph(doc(model))
    assert plan.data_shape == (5,) and plan.node("j").output_shape == (6,)
    tc.manual_seed(0)
    m = build_model(Spec.from_doc(doc(model)))
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(2))
    wa, ba, wb, bb, wo, bo = (v.data for v in m.variables)
    want = torch.cat([x[:, :3] @ wa + ba, x[:, 3:] @ wb + bb], dim=1) @ wo + bo
    for given in (tc.tensor(x), {"a": tc.tensor(x[:, :3]), "b": tc.tensor(x[:, 3:])},
                  (tc.tensor(x[:, :3]), tc.tensor(x[:, 3:]))):
        torch.testing.assert_close(m(given).data, want, rtol=1e-6, atol=1e-6)
    with pytest.raises(ShapeError, match="input 'b' expects"):
        m({"a": tc.tensor(x[:, :3]), "b": tc.tensor(x[:, :3])})
    bad = model.replace("type: concatenate", "type: add")
    (msg,) = errors(bad)
    assert msg.startswith(f"t.yaml:{line_of(bad, 'name: j')}:7: model.nodes[2]: node 'j' (add) "
                          f"cannot take its inputs: 'da' (line {line_of(bad, 'name: da')}) gives "
                          f"[4], 'db' (line {line_of(bad, 'name: db')}) gives [2]: ")


def test_columns_must_fit_the_shape():
    model = ("  inputs:\n    - {name: a, shape: [3], columns: [0, 2]}\n"
             "    - {name: b, shape: [2], columns: [3, 5]}\n  nodes:\n"
             "    - {name: d, type: dense, units: 2, inputs: a}\n"
             "    - {name: e, type: dense, units: 2, inputs: b}\n"
             "    - {name: f, type: dense, units: 2, inputs: b}\n")
    got = errors(model)
    assert any("model.inputs[0].columns: columns [0, 2] give 2 features but shape ends in 3" in e
               for e in got)


def test_override_addresses_a_node_by_name():
    plan = plan_graph(doc(SHARED, ["model.nodes.out.units=9"]))
    assert plan.output_shape == (9,)
    with pytest.raises(Exception, match="no item named 'outt'; did you mean 'out'"):
        doc(SHARED, ["model.nodes.outt.units=9"])


def test_layers_and_nodes_are_exclusive():
    with pytest.raises(SpecErrors, match="give either layers or nodes"):
        Spec.from_doc(doc("  input_shape: [4]\n  layers: [{type: dense, units: 2}]\n" + SHARED))


def test_trace_yields_every_node_call_and_ends_at_the_output():
    tc.manual_seed(0)
    model = build_model(Spec.from_doc(doc(SHARED)))
    x = tc.tensor(torch.randn(3, 4, generator=torch.Generator().manual_seed(3)))
    steps = list(model.trace(x))
    assert [layer.name for layer, _ in steps] == ["d1", "d1", "out"]  # d2 calls d1's layer
    torch.testing.assert_close(steps[0][1].data, torch.tanh(x.data @ model.variables[0].data
                                                            + model.variables[1].data))
    torch.testing.assert_close(steps[-1][1].data, model(x).data)


def test_resolved_model_section_fills_defaults_and_reads_back_the_same():
    model = build_model(Spec.from_doc(doc(SHARED)))
    r = model.resolved()
    assert r["inputs"] == [{"name": "x", "shape": [4], "dtype": "float32"}]
    assert r["nodes"][0] == {"type": "dense", "units": 4, "activation": "tanh", "use_bias": True,
                             "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
                             "kernel_regularizer": None, "bias_regularizer": None,
                             "name": "d1", "inputs": ["x"]}
    assert r["nodes"][1] == {"name": "d2", "type": "dense", "inputs": ["d1"], "shared_with": "d1"}
    again = plan_graph(SpecDoc("<resolved>", {"model": r}))
    first = plan_graph(doc(SHARED))
    assert [(n.name, n.inputs, n.output_shape, n.shared_with) for n in again.nodes] == \
        [(n.name, n.inputs, n.output_shape, n.shared_with) for n in first.nodes]


def test_chain_shape_error_names_the_layer_before_and_its_line():
    chain = ("  input_shape: [4]\n  layers:\n    - {type: dense, units: 5}\n"
             "    - {type: conv2d, filters: 2, kernel_size: 3}\n")
    (msg,) = errors(chain)
    assert msg.startswith("t.yaml:8:7: model.layers[1]: layer 'conv2d' (conv2d) cannot take input "
                          "shape [5] (from layer 'dense', line 7): ")
    (msg,) = errors(chain.replace("{type: dense, units: 5}", "{type: conv2d, filters: 2, "
                                  "kernel_size: 3}").replace("    - {type: conv2d, filters: 2, "
                                                             "kernel_size: 3}\n", "", 1))
    assert "cannot take input shape [4] (from model.input_shape, line 5): " in msg
