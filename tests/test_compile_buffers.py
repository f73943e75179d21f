"""The persistent_buffers pass: matrix products that do not outlive the step write into
buffers allocated once; values stay bit-identical and returned tensors stay fresh."""

from __future__ import annotations

import numpy as np
import torch

import trainctl as tc
from trainctl.autodiff import GradientTape, ops
from trainctl.compile import DEFAULT_PASSES, OptimizerStep, effect, function
from trainctl.optim import build_optimizer

NO_BUFFERS = tuple(p for p in DEFAULT_PASSES if p != "persistent_buffers")

def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))

def _buffered(graph) -> list[str]:
    """The ops of the nodes that write into a ``state`` buffer."""
    return [n.op for n in graph.nodes if "out" in n.kwargs
            and n.inputs[n.kwargs["out"].index].op == "state"]

def _mlp(passes):
    w1 = tc.Variable(_rand(6, 8, seed=1), name="w1")
    b1 = tc.Variable(_rand(8, seed=2), name="b1")
    w2 = tc.Variable(_rand(8, 3, seed=3), name="w2")
    ws = [w1, b1, w2]
    opt = build_optimizer("adam", ws, learning_rate=0.01)

    def step(x):
        with GradientTape() as tape:
            pred = ops.tanh(x @ w1 + b1) @ w2
            loss = ops.mean(ops.square(pred))
        effect("optimizer_update", OptimizerStep(opt), tape.gradient(loss, ws))
        return loss, pred

    return function(step, passes=passes), ws

def test_training_step_gradients_use_buffers_and_values_are_unchanged():
    f, ws = _mlp(DEFAULT_PASSES)
    ref, ref_ws = _mlp(NO_BUFFERS)
    x = tc.tensor(_rand(5, 6, seed=9))
    buffered = _buffered(f.trace(x).optimized)
    # the hidden layer's addmm and the weight gradients; not pred, an output
    assert buffered.count("matmul_nd") >= 3 and "addmm" in buffered
    assert _buffered(ref.trace(x).optimized) == []
    kept = []
    for i in range(5):
        x = tc.tensor(_rand(5, 6, seed=20 + i))
        (la, pa), (lb, pb) = f(x), ref(x)
        np.testing.assert_array_equal(la.numpy(), lb.numpy())
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
        kept.append((pa, pa.numpy().copy()))
    for a, b in zip(ws, ref_ws):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for t, values in kept:  # results of earlier steps were not overwritten
        np.testing.assert_array_equal(t.numpy(), values)

def test_products_whose_memory_leaves_the_step_get_no_buffer():
    w = tc.Variable(_rand(4, 3, seed=1), name="w")
    v = tc.Variable(_rand(3, 2, seed=2), name="v")
    cases = {
        "output": (lambda x: x @ w, 0),
        "view of it returned": (lambda x: ops.transpose(x @ w), 0),
        "written in place, returned": (lambda x: ops.exp(x @ w), 0),
        "read by a new product only": (lambda x: (x @ w) @ v, 1),
    }
    for name, (fn, want) in cases.items():
        f = function(fn)
        x = tc.tensor(_rand(2, 4, seed=5))
        got = _buffered(f.trace(x).optimized)
        assert len(got) == want, (name, got)
        first = f(x)
        kept = first.numpy().copy()
        f(tc.tensor(_rand(2, 4, seed=6)))
        np.testing.assert_array_equal(first.numpy(), kept)
