"""tc.function: tracing into the IR, the signature cache, replay against eager and
torch.autograd, random ops, state updates, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.backend import generator, manual_seed
from trainctl.compile import (DEFAULT_PASSES, GraphTraceError, OptimizerStep, RetracingWarning,
                              effect, function)
from trainctl.optim import build_optimizer


def _rand(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tc.tensor(torch.randn(*shape, generator=g))


def _mlp_params():
    w = tc.Variable(_rand(4, 3, seed=1), name="w")
    b = tc.Variable(_rand(3, seed=2), name="b")
    return w, b


def test_trace_records_ops_with_shape_dtype_device():
    w, b = _mlp_params()

    @function(passes=())
    def f(x):
        return ops.relu(x @ w + b)

    cf = f.trace(_rand(5, 4))
    ops_seen = [n.op for n in cf.graph.nodes]
    assert ops_seen == ["input", "variable", "matmul_nd", "variable", "add", "relu"]
    relu = cf.graph.nodes[-1]
    assert relu.shape == (5, 3) and relu.dtype == torch.float32 and relu.device.type == "cpu"
    assert relu.inputs[0].op == "add" and relu.inputs[0].inputs[1].value is b
    assert cf.graph.outputs == [relu]
    assert "relu" in cf.graph.format() and "[5,3] float32" in cf.graph.format()


def test_replay_matches_torch_autograd_for_forward_and_gradients():
    w, b = _mlp_params()

    @function
    def step(x):
        with GradientTape() as tape:
            loss = ops.mean(ops.square(ops.tanh(x @ w + b)))
        return loss, tape.gradient(loss, [w, b])

    for seed in range(4):  # the first call traces, the others replay
        x = _rand(6, 4, seed=10 + seed)
        loss, (gw, gb) = step(x)
        tw, tb = w.data.clone().requires_grad_(), b.data.clone().requires_grad_()
        ref = torch.tanh(x.data @ tw + tb).square().mean()
        ref.backward()
        torch.testing.assert_close(loss.data, ref.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(gw.data, tw.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gb.data, tb.grad, rtol=1e-5, atol=1e-7)
    assert step.traces == 1
    assert "def run(inputs)" in step.trace(x).source and " for " not in step.trace(x).source


def test_cache_by_signature_and_retracing_warning():
    calls = []

    @function(max_traces=2)
    def f(x, scale):
        calls.append(1)  # Python side effects run at trace time only
        return x * scale

    x = _rand(3)
    assert np.allclose(f(x, 2.0).numpy(), 2 * x.numpy())
    f(_rand(3, seed=5), 2.0)
    assert f.traces == 1 and len(calls) == 1
    assert np.allclose(f(x, 3.0).numpy(), 3 * x.numpy())  # a new Python value retraces
    assert f.traces == 2
    with pytest.warns(RetracingWarning, match="traced 3 times"):
        f(_rand(4), 3.0)  # a new shape retraces
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(_rand(4, seed=9), 3.0)  # known signature: no trace, no warning
    assert f.traces == 3


def test_python_value_of_a_traced_tensor_is_an_error():
    @function
    def f(x):
        if ops.sum(x) > 0:  # data-dependent Python control flow
            return x
        return -x

    with pytest.raises(GraphTraceError, match="reads the value of a traced tensor"):
        f(_rand(3))


def _dropout(x):
    keep = torch.empty(x.shape, dtype=x.dtype)
    keep.bernoulli_(0.5, generator=generator(x.device))
    return x * tc.tensor(keep.mul_(2.0))


def test_random_ops_draw_fresh_masks_from_the_eager_stream():
    x = tc.tensor(torch.ones(64))
    manual_seed(3)
    eager = [_dropout(x).numpy() for _ in range(4)]
    manual_seed(3)
    traced = function(_dropout)
    graph = [traced(x).numpy() for _ in range(4)]
    assert traced.traces == 1
    for e, g in zip(eager, graph):
        np.testing.assert_array_equal(g, e)
    assert not np.array_equal(graph[1], graph[2])  # a fresh mask at every run
    assert any(n.impure for n in traced.trace(x).optimized.nodes)


def test_in_place_state_updates_and_variables_are_read_at_run_time():
    stat = tc.Variable(torch.zeros(3), trainable=False, name="moving")
    w = tc.Variable(torch.ones(3), name="w")

    @function
    def f(x):
        stat.data.mul_(0.5).add_(x.data.mean(0), alpha=0.5)  # as batch normalization does
        return x * w

    x = tc.tensor([[2.0, 4.0, 6.0]])
    f(x)
    f(x)
    np.testing.assert_allclose(stat.numpy(), [1.5, 3.0, 4.5])  # updated at every run
    w.assign([2.0, 2.0, 2.0])
    np.testing.assert_allclose(f(x).numpy(), [[4.0, 8.0, 12.0]])
    w.data = torch.full((3,), 3.0)  # swapped storage (the moving average swaps .data)
    np.testing.assert_allclose(f(x).numpy(), [[6.0, 12.0, 18.0]])


def test_optimizer_update_effect_replays_adam_like_eager():
    def make():
        w = tc.Variable(_rand(4, 2, seed=3), name="w")
        return w, build_optimizer("adam", [w], learning_rate=0.05)

    def step(w, opt, x):
        with GradientTape() as tape:
            loss = ops.mean(ops.square(x @ w))
        grads = tape.gradient(loss, [w])
        effect("optimizer_update", OptimizerStep(opt, 1.0), grads)
        return loss

    we, oe = make()
    wg, og = make()
    traced = function(lambda x: step(wg, og, x))
    for i in range(5):
        x = _rand(3, 4, seed=20 + i)
        le, lg = step(we, oe, x), traced(x)
        assert float(le) == float(lg)
    np.testing.assert_array_equal(wg.numpy(), we.numpy())
    assert og.iterations == oe.iterations == 5
    assert "adam_fused" in [n.op for n in traced.trace(x).optimized.nodes]


def test_a_function_called_inside_a_trace_is_inlined():
    inner = function(lambda x: ops.exp(x))
    outer = function(lambda x: inner(x) + 1.0)
    x = _rand(3)
    np.testing.assert_allclose(outer(x).numpy(), np.exp(x.numpy()) + 1, rtol=1e-6)
    assert inner.traces == 0 and "exp" in [n.op for n in outer.trace(x).graph.nodes]


def test_default_passes_end_with_liveness():
    assert DEFAULT_PASSES[-1] == "liveness"


def test_fast_calls_keep_the_signature_semantics():
    """Calls of Tensors and scalars take a cached key; a new shape, dtype, scalar value
    or scalar type still retraces, and a Variable or keyword argument takes the full
    signature: each signature runs its own trace."""
    calls = []

    @tc.function(max_traces=10)
    def f(x, k):
        calls.append(k)
        return x * 2.0, x + 1.0

    x = _rand(3)
    for _ in range(3):
        a, b = f(x, 1)
        np.testing.assert_allclose(a.numpy(), 2 * x.numpy())
        np.testing.assert_allclose(b.numpy(), x.numpy() + 1)
    assert f.traces == 1
    f(x, True)  # True == 1, but a bool is another signature
    f(x, 1.0)
    f(_rand(4), 1)
    f(tc.tensor(_rand(3).data.double()), 1)
    assert f.traces == 5 and calls == [1, True, 1.0, 1, 1]
    f(x, k=1)  # keyword: the full signature, another trace
    f(x, k=1)
    assert f.traces == 6
    v = tc.Variable(_rand(3), name="v")
    r = f(v, 1)[0]
    v.assign(_rand(3, seed=9).data)
    np.testing.assert_allclose(f(v, 1)[0].numpy(), 2 * v.numpy())
    assert f.traces == 7 and r.numpy().shape == (3,)
