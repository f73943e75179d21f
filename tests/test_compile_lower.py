"""Lowering rules of the code generator (trainctl.compile.lower): each op written as the
torch calls its forward makes gives the same values, bit for bit, as the generated code
that calls the op's own function, on small traced graphs with random inputs."""

from __future__ import annotations

import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.compile import DEFAULT_PASSES, compile_graph, function, run_passes


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _check(fn, inputs, expect, absent=(), passes=("dce",)):
    """Trace fn on ``inputs``; the lowered source contains each of ``expect`` and none of
    ``absent`` (op function names), and both codes give equal outputs on fresh inputs."""
    graph = run_passes(function(fn, passes=()).trace(*[tc.tensor(i) for i in inputs]).graph,
                       passes)
    lowered, src = compile_graph(graph)
    plain, plain_src = compile_graph(graph, lowering=False)
    for e in expect:
        assert e in src, (e, src)
        assert e not in plain_src
    for a in absent:
        assert a not in src, (a, src)
    for t in range(3):
        fresh = [(i.roll(t, 0) if i.dtype == torch.int64 else _rand(*i.shape, seed=10 + t))
                 for i in inputs]
        for a, b in zip(plain(fresh), lowered(fresh)):
            if a is not None:
                torch.testing.assert_close(b, a, rtol=0, atol=0)
    return src


def test_sum_to_is_one_sum():
    def f(x, b, c, d):
        with GradientTape() as tape:
            tape.watch(b), tape.watch(c), tape.watch(d)
            loss = ops.sum(ops.square(x + b) * c + d)
        return tape.gradient(loss, [b, c, d])

    # b [3]: the leading axis; c [4, 1]: a kept axis; d [1, 1, 3]... of x [2, 4, 3]
    src = _check(f, [_rand(2, 4, 3), _rand(3), _rand(4, 1), _rand(1, 1, 3)],
                 ["torch.sum(", ", True).reshape("], absent=["_sum_to("])
    assert "(0, 1))" in src and "(0, 1), True)" in src


def test_permute_reshape_and_matrix_products():
    w = tc.Variable(_rand(5, 3, seed=1), name="w")

    def f(x, y):
        with GradientTape() as tape:
            z = ops.reshape(ops.permute(y, (2, 0, 1)), (-1, 6))
            loss = ops.sum(ops.tanh(x @ w) * 2.0) + ops.sum(z * z)
        return tape.gradient(loss, [w, y])

    _check(f, [_rand(4, 5), _rand(2, 3, 2)],
           ["torch.mm(", ".t()", ".permute((2, 0, 1))", ".reshape((2, 6))"],
           absent=["_permute(", "_reshape(", "torch.matmul("])


def test_softmax_cross_entropy_without_wrappers():
    w = tc.Variable(_rand(5, 4, seed=4), name="w")

    def f(x, y):
        with GradientTape() as tape:
            ls = ops.log_softmax(x @ w, axis=-1)
            per = -ops.reshape(ops.take_along_axis(ls, ops.reshape(y, (-1, 1)), axis=1), (-1,))
            loss = ops.mean(per)
        return per, tape.gradient(loss, w)

    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    src = _check(f, [_rand(6, 5), labels],
                 ["torch._log_softmax(", "nll_loss_nd(", "torch.scatter_add(",
                  "torch._log_softmax_backward_data("],
                 absent=["= K"],  # no call of an op's own function is left
                 passes=DEFAULT_PASSES)
    assert "torch.zeros" not in src


def test_scatter_add_keeps_its_zeros_clean():
    """The zeros tensor captured for put_along_axis_add is never written: repeated runs
    give the same values as the first."""
    def f(g, idx):
        return ops.put_along_axis_add(g, idx, axis=1, shape=(3, 4))

    idx = torch.tensor([[1], [3], [0]])
    graph = function(f, passes=()).trace(tc.tensor(_rand(3, 1)), tc.tensor(idx)).graph
    run, src = compile_graph(graph)
    assert "torch.scatter_add(" in src
    g = _rand(3, 1, seed=5)
    first = run([g, idx])[0].clone()
    for _ in range(3):
        torch.testing.assert_close(run([g, idx])[0], first, rtol=0, atol=0)
    want = torch.zeros(3, 4)
    want[torch.arange(3), idx[:, 0]] = g[:, 0]
    torch.testing.assert_close(first, want, rtol=0, atol=0)


def test_cases_a_rule_does_not_handle_keep_the_op_call():
    def f(x, y):  # a batched (3-D) matmul is not torch.mm
        return ops.matmul(x, y)

    src = _check(f, [_rand(2, 3, 4), _rand(2, 4, 5)], [], absent=["torch.mm("])
    assert "torch.matmul(" in src
