"""The elementwise fusion pass (compile/passes/elementwise.py) on small graphs: outputs
before and after on random inputs (bit-identical for fused chains, whose kernels run in
the same order; to 1e-6 for torch's composite backward kernels, against the unfused
chain and against torch.autograd), and what it must leave alone."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.compile import PASSES, compile_graph, function
from trainctl.compile.ir import Graph, Ref
from trainctl.compile.passes.elementwise import FusedKernel

fuse = PASSES.get("fuse_elementwise")


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _graph(fn, *shapes):
    return function(fn, passes=()).trace(*[tc.tensor(_rand(*s)) for s in shapes]).graph


def _run(graph, inputs):
    return compile_graph(graph)[0]([t.clone() for t in inputs])


def _check(before, after, shapes, exact=True):
    for trial in range(3):
        inputs = [_rand(*s, seed=10 * trial + i) for i, s in enumerate(shapes)]
        for a, b in zip(_run(before, inputs), _run(after, inputs)):
            tol = 0 if exact else 1e-6
            torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def _ops(graph):
    return [n.op for n in graph.nodes if not n.leaf]


def test_a_chain_becomes_one_node_bit_for_bit():
    g = _graph(lambda x, y: ops.tanh(ops.exp(x) * y + 1.0) - x, (5, 7), (5, 7))
    after = fuse(g)
    assert _ops(after) == ["fused_elementwise"]
    kernel = after.nodes[-1].fn
    assert [op for op, _ in kernel.steps] == ["exp", "mul", "add", "tanh", "sub"]
    _check(g, after, [(5, 7), (5, 7)])


def test_a_tree_with_broadcast_operands_is_fused_and_runs_in_one_buffer():
    b = tc.Variable(_rand(7, seed=3), name="b")
    g = _graph(lambda x, y: ops.sigmoid(x + b) * ops.relu(y - 0.5), (4, 7), (4, 7))
    after = fuse(g)
    assert _ops(after) == ["fused_elementwise"]
    _check(g, after, [(4, 7), (4, 7)])
    kernel, inputs = after.nodes[-1].fn, [_rand(4, 7, seed=5), _rand(7, seed=6),
                                          _rand(4, 7, seed=7)]
    # inputs in the fused node's order: x, b, the constant 0.5, y
    node = after.nodes[-1]
    real = {"input": lambda n: inputs[0] if n.value == 0 else inputs[2],
            "variable": lambda n: inputs[1], "constant": lambda n: n.value}
    args = [real[i.op](i) for i in node.inputs]
    out = kernel(*args)
    torch.testing.assert_close(out, kernel.pure(*args), rtol=0, atol=0)
    assert all(out.data_ptr() != a.data_ptr() for a in args)


def test_relu_tanh_sigmoid_rules_become_torch_backward_kernels():
    w = tc.Variable(_rand(6, 6, seed=1), name="w")

    def step(x):
        with GradientTape() as tape:
            h = ops.relu(x @ w)
            loss = ops.sum(ops.sigmoid(ops.tanh(h @ w)) * x)
        return tape.gradient(loss, w)

    g = _graph(step, (4, 6))
    after = fuse(g)
    for op in ("threshold_backward", "tanh_backward", "sigmoid_backward"):
        assert op in str([n.fn for n in after.nodes]) or after.count(op) == 1, op
    assert after.count("torch.gt") == 0 and after.count("torch.to") == 0
    _check(g, after, [(4, 6)], exact=False)
    # against torch.autograd
    x = _rand(4, 6, seed=9)
    wt = w.data.clone().requires_grad_()
    torch.sum(torch.sigmoid(torch.tanh(torch.relu(x @ wt) @ wt)) * x).backward()
    torch.testing.assert_close(_run(after, [x])[0], wt.grad, rtol=1e-6, atol=1e-6)


def test_add_of_a_product_becomes_addcmul():
    g = _graph(lambda a, b, c: a + b * c, (3, 5), (3, 5), (5,))
    after = fuse(g)
    assert _ops(after) == ["addcmul"]
    _check(g, after, [(3, 5), (3, 5), (5,)], exact=False)


@pytest.mark.parametrize("case", ["read twice", "output", "other shape"])
def test_values_read_elsewhere_or_of_another_shape_are_not_fused_into(case):
    def twice(x):
        n = ops.neg(x)
        return ops.exp(n) * ops.tanh(n)

    def output(x):
        n = ops.neg(x)
        return n, ops.exp(n) + 1.0

    if case in ("read twice", "output"):
        fn, shapes = (twice if case == "read twice" else output), [(3, 4)]
    else:  # a sum in the middle: two chains of different shapes
        fn, shapes = (lambda x, y: ops.exp(ops.sum(ops.neg(x), axis=0)) * y), [(3, 4), (4,)]
    g = _graph(fn, *shapes)
    after = fuse(g)
    neg = [n for n in after.nodes if n.op == "neg"]
    assert len(neg) == 1 and after.count("fused_elementwise") == 1  # the rest is fused
    _check(g, after, shapes)


def test_nothing_moves_across_an_impure_node_that_writes_an_input():
    g = Graph("inplace")
    x = g.add("input", value=0, shape=(4,), dtype=torch.float32)
    y = g.add("input", value=1, shape=(4,), dtype=torch.float32)
    s = g.add("add", [x, y], fn=torch.add, args=(Ref(0), Ref(1)), shape=(4,), dtype=torch.float32)
    w = g.add("torch.mul_", [x], fn=torch.Tensor.mul_, args=(Ref(0), 3.0), impure=True,
              shape=(4,), dtype=torch.float32)
    r = g.add("mul", [s, y], fn=torch.mul, args=(Ref(0), Ref(1)), shape=(4,),
              dtype=torch.float32)
    g.outputs = [r, w]
    after = fuse(g)
    assert after.count("add") == 1 and after.count("fused_elementwise") == 0
    _check(g, after, [(4,), (4,)])
    # without the write the two nodes are one
    g.nodes.remove(w)
    g.outputs = [r]
    assert _ops(fuse(g)) == ["fused_elementwise"]


def test_fused_kernel_repr_names_its_steps():
    k = FusedKernel([("exp", (("in", 0),)), ("neg", (("step", 0),))])
    assert repr(k) == "fused_elementwise(exp, neg)"
    x = _rand(3)
    torch.testing.assert_close(k(x), -torch.exp(x), rtol=0, atol=0)
