"""Each graph pass on small traced graphs: outputs equal before and after on random
inputs, the pass did its rewrite, and impure nodes (random draws, effects) survive."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.backend import generator, manual_seed
from trainctl.compile import PASSES, compile_graph, function, run_passes
from trainctl.optim import build_optimizer


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _graph(fn, *shapes):
    """The graph traced from fn (no passes) on random inputs of ``shapes``."""
    return function(fn, passes=()).trace(*[tc.tensor(_rand(*s)) for s in shapes]).graph


def _outputs(graph, inputs):
    return compile_graph(graph)[0](inputs)


def _same_outputs(before, after, shapes, exact=True, trials=3):
    for t in range(trials):
        inputs = [_rand(*s, seed=100 + 7 * t + i) for i, s in enumerate(shapes)]
        for a, b in zip(_outputs(before, inputs), _outputs(after, inputs)):
            if exact:
                torch.testing.assert_close(b, a, rtol=0, atol=0)
            else:
                torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)


def test_every_pass_is_registered_by_name():
    assert {"dce", "cse", "constant_folding", "algebraic_simplification", "fuse_addmm",
            "foreach_optimizer", "liveness", "buffer_reuse",
            "fuse_softmax_xent"} <= set(PASSES.names())


def test_dead_code_elimination_drops_unused_pure_nodes():
    def f(x):
        ops.exp(x) * 3.0  # computed, never used
        return ops.tanh(x)

    g = _graph(f, (4, 3))
    after = PASSES.get("dce")(g)
    assert g.count("exp") == 1 and after.count("exp") == 0 and after.count("mul") == 0
    assert len(g.nodes) > len(after.nodes) and after.count("tanh") == 1
    _same_outputs(g, after, [(4, 3)])


def test_cse_merges_repeated_computations():
    g = _graph(lambda x, y: ops.exp(x @ y) + ops.exp(x @ y), (3, 4), (4, 2))
    after = PASSES.get("dce")(PASSES.get("cse")(g))
    assert g.count("exp") == 2 and after.count("exp") == 1 and after.count("matmul_nd") == 1
    _same_outputs(g, after, [(3, 4), (4, 2)])


def test_constant_folding_evaluates_constant_subgraphs_and_shape_only_factories():
    def f(x):
        c = tc.tensor(torch.tensor([1.0, 2.0, 3.0]))  # made by torch during the trace: a constant
        scale = ops.exp(c) * 2.0 + 1.0      # constants only: folded
        return x * scale + tc.tensor(torch.ones_like(x.data))  # a shape-only factory

    g = _graph(f, (2, 3))
    after = PASSES.get("dce")(PASSES.get("constant_folding")(g))
    assert g.count("exp") == 1 and after.count("exp") == 0
    assert g.count("torch.ones_like") == 1 and after.count("torch.ones_like") == 0
    assert [n.op for n in after.nodes if not n.leaf] == ["mul", "add"]
    _same_outputs(g, after, [(2, 3)])


def test_algebraic_simplification_removes_identities():
    g = _graph(lambda x: ops.neg(ops.neg(x * 1.0 + 0.0)) / 1.0 - 0.0, (3, 3))
    after = PASSES.get("dce")(PASSES.get("algebraic_simplification")(g))
    assert [n.op for n in after.nodes] == ["input"]
    assert after.outputs[0] is after.nodes[0]
    _same_outputs(g, after, [(3, 3)])


def test_fuse_addmm_with_and_without_relu():
    w = tc.Variable(_rand(5, 4, seed=1), name="w")
    b = tc.Variable(_rand(4, seed=2), name="b")
    g = _graph(lambda x: ops.relu(x @ w + b), (8, 5))
    after = PASSES.get("fuse_addmm")(g)
    assert after.count("addmm_relu") == 1 and after.count("matmul_nd") == 0
    _same_outputs(g, after, [(8, 5)], exact=False)

    def train(x):  # relu's rule reads relu's output, not the sum: still addmm_relu
        with GradientTape() as tape:
            loss = ops.sum(ops.relu(x @ w + b))
        return loss, tape.gradient(loss, [w, b])
    g = _graph(train, (8, 5))
    after = PASSES.get("fuse_addmm")(g)
    assert g.count("relu_grad") == 1
    assert after.count("addmm_relu") == 1 and after.count("addmm") == 0
    assert after.count("matmul_nd") == g.count("matmul_nd") - 1
    _same_outputs(g, after, [(8, 5)], exact=False)

    def reread(x):  # the sum has a second reader: addmm only, relu stays
        z = x @ w + b
        return ops.relu(z) * z
    g = _graph(reread, (8, 5))
    after = PASSES.get("fuse_addmm")(g)
    assert after.count("addmm") == 1 and after.count("addmm_relu") == 0
    assert after.count("relu") == 1 and after.count("matmul_nd") == 0
    _same_outputs(g, after, [(8, 5)], exact=False)


def test_foreach_optimizer_fuses_adam_bit_for_bit():
    def build():
        ws = [tc.Variable(_rand(3, 4, seed=1), name="a"), tc.Variable(_rand(4, seed=2), name="b")]
        return ws, build_optimizer("adamw", ws, learning_rate=0.1, weight_decay=0.01)

    def make_step(ws, opt):
        from trainctl.compile import OptimizerStep, effect

        def step(x):
            with GradientTape() as tape:
                loss = ops.sum(ops.square(x @ ws[0] + ws[1]))
            effect("optimizer_update", OptimizerStep(opt), tape.gradient(loss, ws))
            return loss
        return step

    (w1, o1), (w2, o2) = build(), build()
    f1 = function(make_step(w1, o1), passes=("dce",))
    f2 = function(make_step(w2, o2), passes=("foreach_optimizer",))
    x = tc.tensor(_rand(2, 3, seed=7))
    f2.trace(x)
    f1(x)
    assert f2.trace(x).optimized.count("adam_fused") == 1
    assert f1.trace(x).optimized.count("adam_fused") == 0
    for i in range(4):
        x = tc.tensor(_rand(2, 3, seed=8 + i))
        assert float(f1(x)) == float(f2(x))
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert o1.steps == o2.steps and o1.iterations == o2.iterations == 5
    np.testing.assert_array_equal(o1.get_slot("a", "v").numpy(), o2.get_slot("a", "v").numpy())


def test_liveness_frees_each_value_after_its_last_reader():
    g = _graph(lambda x: ops.tanh(ops.exp(x) * x) + ops.exp(x), (4,))
    after = PASSES.get("liveness")(g)
    freed = [i for n in after.nodes if n.op == "free" for i in n.inputs]
    assert freed and all(not i.leaf for i in freed)
    for pos, n in enumerate(after.nodes):
        if n.op == "free":
            later = [m for m in after.nodes[pos + 1:] if m.op != "free"]
            assert not any(i in m.inputs for i in n.inputs for m in later)
    assert all(o not in freed for o in after.outputs)
    assert "del " in compile_graph(after)[1]
    _same_outputs(g, after, [(4,)])


def test_passes_keep_random_draws_and_their_order():
    def f(x):
        keep = torch.empty(x.shape)
        keep.bernoulli_(0.5, generator=generator(x.device))
        unused = torch.empty(x.shape)
        unused.bernoulli_(0.5, generator=generator(x.device))  # still advances the stream
        return x * tc.tensor(keep) * 1.0

    g = _graph(f, (32,))
    after = run_passes(g, ("constant_folding", "algebraic_simplification", "cse", "dce",
                           "fuse_addmm", "liveness"))
    assert after.count("torch.bernoulli_") == 2
    x = [torch.ones(32)]
    manual_seed(11)
    a = [_outputs(g, x)[0] for _ in range(2)]
    manual_seed(11)
    b = [_outputs(after, x)[0] for _ in range(2)]
    for u, v in zip(a, b):
        torch.testing.assert_close(v, u, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["nope"])
def test_unknown_pass_name_is_an_error(name):
    from trainctl.errors import UnknownNameError
    with pytest.raises(UnknownNameError):
        run_passes(_graph(lambda x: x + 1.0, (2,)), [name])


def test_buffer_reuse_writes_elementwise_chains_into_dying_buffers():
    w = tc.Variable(_rand(4, 4, seed=3), name="w")
    g = _graph(lambda x: ops.tanh(ops.exp(x @ w) * 2.0 + 1.0), (3, 4))
    after = PASSES.get("buffer_reuse")(g)
    reused = {n.op: n.inputs[n.kwargs["out"].index].op for n in after.nodes if "out" in n.kwargs}
    assert reused == {"exp": "matmul_nd", "mul": "exp", "add": "mul", "tanh": "add"}
    _same_outputs(g, after, [(3, 4)])
    # a value read twice, an input, a weight or an output is never written over
    g = _graph(lambda x: (ops.exp(x) * 2.0 + ops.exp(x) * 0.0 + x * w, ops.neg(x)), (4, 4))
    after = PASSES.get("buffer_reuse")(g)
    for n in after.nodes:
        if "out" in n.kwargs:
            target = n.inputs[n.kwargs["out"].index]
            assert not target.leaf and target not in after.outputs
            assert sum(target in m.inputs for m in after.nodes) == 1
    _same_outputs(g, after, [(4, 4)])


def test_fuse_softmax_xent_forward_and_backward():
    w = tc.Variable(_rand(5, 4, seed=4), name="w")

    def f(x, y):
        with GradientTape() as tape:
            ls = ops.log_softmax(x @ w, axis=-1)
            per = -ops.reshape(ops.take_along_axis(ls, ops.reshape(y, (-1, 1)), axis=1), (-1,))
            loss = ops.mean(per)
        return per, tape.gradient(loss, w)

    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    g = function(f, passes=()).trace(tc.tensor(_rand(6, 5)), tc.tensor(labels)).graph
    after = PASSES.get("fuse_softmax_xent")(g)
    assert after.count("nll_loss") == 1 and after.count("log_softmax_backward") == 1
    assert after.count("take_along_axis") == 0 and after.count("exp") == 0
    for t in range(3):
        inputs = [_rand(6, 5, seed=50 + t), labels.roll(t)]
        (pa, ga), (pb, gb) = _outputs(g, inputs), _outputs(after, inputs)
        torch.testing.assert_close(pb, pa, rtol=0, atol=0)  # the same gather, exactly
        torch.testing.assert_close(gb, ga, rtol=1e-6, atol=1e-7)

    g = _graph(lambda x: ops.relu(ops.exp(x)), (4,))  # torch.relu takes no out=: kept as is
    after = PASSES.get("buffer_reuse")(g)
    assert not any("out" in n.kwargs for n in after.nodes if n.op == "relu")
    _same_outputs(g, after, [(4,)])
