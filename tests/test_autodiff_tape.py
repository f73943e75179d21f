"""GradientTape as TensorFlow's: per-tape watch, persistence, stop_gradient, intermediate
sources, unconnected gradients, output_gradients, jacobian/batch_jacobian, integer sources;
higher order (Hessian-vector product, a trained gradient penalty) against torch.autograd;
memory (saved tensors released after a step, flat over many steps).

torch.autograd is used only as an oracle, in float64.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import trainctl as tc
from trainctl.errors import DTypeError, ShapeError

F64 = torch.float64


def f64(values):
    return tc.tensor(np.asarray(values, dtype=np.float64), dtype="float64")


def rand(rng, *shape):
    return rng.normal(size=shape)


# ---- watch is per tape ----------------------------------------------------------------
def test_watch_records_only_while_the_watching_tape_is_active():
    x = f64([1.0, 2.0])
    before = x * 2.0
    with tc.GradientTape() as tape:
        tape.watch(x)
        inside = tc.ops.sum(x * 3.0)
    after = x * 4.0
    assert before._node is None and after._node is None and inside._node is not None
    assert not x.tracked
    assert tape.gradient(inside, x).numpy().tolist() == [3.0, 3.0]


def test_a_tape_does_not_follow_ops_recorded_for_another_tapes_watch():
    x = f64([0.5, -1.5])
    with tc.GradientTape(persistent=True) as outer:   # does not watch x
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = tc.ops.sum(x ** 3)
        g = inner.gradient(y, x)
    np.testing.assert_allclose(g.numpy(), 3 * np.array([0.5, -1.5]) ** 2, rtol=1e-15)
    assert outer.gradient(g, x) is None          # TensorFlow: None, x was never watched
    assert outer.gradient(y, x) is None
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = tc.ops.sum(x ** 3)
        g = inner.gradient(y, x)
    np.testing.assert_allclose(outer.gradient(g, x).numpy(), 6 * np.array([0.5, -1.5]),
                               rtol=1e-15)


def test_ops_before_the_watch_call_are_not_recorded():
    x = f64(2.0)
    with tc.GradientTape() as tape:
        early = x * 5.0
        tape.watch(x)
        late = x * 7.0
        total = early + late
    assert tape.gradient(total, x).item() == 7.0


def test_watch_accessed_variables_false_needs_explicit_watch():
    v, w = tc.Variable(3.0, dtype="float64"), tc.Variable(2.0, dtype="float64")
    with tc.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(w)
        y = v * v * w
    gv, gw = tape.gradient(y, [v, w])
    assert gw.item() == 9.0
    assert gv is None


def test_persistent_tape_several_calls_and_jacobian():
    x = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = x * x
        z = tc.ops.sum(y * x)
    np.testing.assert_array_equal(tape.gradient(z, x).numpy(), [3.0, 12.0])
    np.testing.assert_array_equal(tape.jacobian(y, x).numpy(), [[2.0, 0.0], [0.0, 4.0]])
    np.testing.assert_array_equal(tape.gradient(z, y).numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(tape.gradient(z, x).numpy(), [3.0, 12.0])
    with tc.GradientTape() as once:
        y = x * x
    once.jacobian(y, x)
    with pytest.raises(RuntimeError, match="only be called once"):
        once.gradient(y, x)


# ---- stop_gradient, intermediate sources, unconnected, output_gradients ---------------
def test_stop_gradient():
    assert tc.stop_gradient is tc.ops.stop_gradient
    x = tc.Variable([1.0, -2.0], dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = tc.ops.sum(x * tc.stop_gradient(x))       # d/dx = x, not 2x
        s = tc.ops.stop_gradient(x * 3.0)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [1.0, -2.0])
    np.testing.assert_array_equal(s.numpy(), [3.0, -6.0])
    assert s._node is None
    assert tape.gradient(s, x) is None
    np.testing.assert_array_equal(tape.gradient(s, x, unconnected_gradients="zero").numpy(),
                                  [0.0, 0.0])


def test_gradients_with_respect_to_intermediate_tensors():
    x = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape() as tape:
        h = x * 3.0
        y = tc.ops.tanh(h)
        z = tc.ops.sum(y * y)
    gh, gy, gx = tape.gradient(z, [h, y, x])
    yv = np.tanh(3.0 * np.array([1.0, 2.0]))
    np.testing.assert_allclose(gy.numpy(), 2 * yv, rtol=1e-15)
    np.testing.assert_allclose(gh.numpy(), 2 * yv * (1 - yv ** 2), rtol=1e-14)
    np.testing.assert_allclose(gx.numpy(), 3 * gh.numpy(), rtol=1e-15)


def test_list_targets_add_and_output_gradients_give_a_vjp():
    rng = np.random.default_rng(0)
    a, w, v = rand(rng, 3, 4), rand(rng, 4, 2), rand(rng, 3, 2)
    x, wt = tc.Variable(a, dtype="float64"), tc.Variable(w, dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        y = tc.ops.tanh(x @ wt)
        y2 = tc.ops.sum(x * x)
    vjp = tape.gradient(y, [x, wt], output_gradients=f64(v))
    both = tape.gradient([y, y2], x, output_gradients=[f64(v), None])
    ta, tw = (torch.tensor(m, requires_grad=True) for m in (a, w))
    ty = torch.tanh(ta @ tw)
    ref = torch.autograd.grad(ty, [ta, tw], grad_outputs=torch.from_numpy(v))
    for ours, theirs in zip(vjp, ref):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(both.numpy(), ref[0].numpy() + 2 * a, rtol=1e-12, atol=1e-14)
    with pytest.raises(ShapeError, match=r"output gradient of shape \[2\] does not match"):
        tape.gradient(y, x, output_gradients=f64([1.0, 2.0]))


# ---- jacobian and batch_jacobian ------------------------------------------------------
def test_jacobian_shapes_and_values_match_torch():
    rng = np.random.default_rng(1)
    a, w = rand(rng, 2, 3), rand(rng, 3, 4)
    x, wt = f64(a), f64(w)
    unused = f64([1.0])
    with tc.GradientTape(persistent=True) as tape:
        tape.watch([x, wt, unused])
        y = tc.ops.softmax(tc.ops.tanh(x @ wt))      # [2, 4]
        s = tc.ops.sum(y * y)                        # scalar
    jac = tape.jacobian(y, {"x": x, "w": wt, "u": unused})
    assert jac["x"].shape == (2, 4, 2, 3) and jac["w"].shape == (2, 4, 3, 4)
    assert jac["u"] is None
    assert tape.jacobian(y, unused, unconnected_gradients="zero").shape == (2, 4, 1)
    ref = torch.autograd.functional.jacobian(
        lambda p, q: torch.softmax(torch.tanh(p @ q), -1), (torch.from_numpy(a), torch.from_numpy(w)))
    np.testing.assert_allclose(jac["x"].numpy(), ref[0].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jac["w"].numpy(), ref[1].numpy(), rtol=1e-12, atol=1e-14)
    js = tape.jacobian(s, x)                         # scalar target: the gradient's shape
    assert js.shape == (2, 3)
    np.testing.assert_allclose(js.numpy(), tape.gradient(s, x).numpy(), rtol=1e-15)


def test_hessian_as_the_jacobian_of_a_gradient():
    rng = np.random.default_rng(2)
    a = rand(rng, 3)
    x = f64(a)
    with tc.GradientTape() as outer:
        outer.watch(x)
        with tc.GradientTape() as inner:
            inner.watch(x)
            y = tc.ops.sum(tc.ops.exp(x) * x[0])
        g = inner.gradient(y, x)
    hess = outer.jacobian(g, x)
    ref = torch.autograd.functional.hessian(lambda t: (torch.exp(t) * t[0]).sum(), torch.from_numpy(a))
    np.testing.assert_allclose(hess.numpy(), ref.numpy(), rtol=1e-12, atol=1e-14)


def test_batch_jacobian_matches_per_example_jacobians():
    rng = np.random.default_rng(3)
    a, w = rand(rng, 5, 3), rand(rng, 3, 4)
    x = f64(a)
    with tc.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = tc.ops.reshape(tc.ops.tanh(x @ f64(w)), (5, 2, 2))   # [b, 2, 2]
        v = tc.ops.sum(x * x, axis=1)                              # [b]
    bj = tape.batch_jacobian(y, x)
    assert bj.shape == (5, 2, 2, 3)
    full = torch.autograd.functional.jacobian(
        lambda t: torch.tanh(t @ torch.from_numpy(w)).reshape(5, 2, 2), torch.from_numpy(a))
    for i in range(5):
        np.testing.assert_allclose(bj.numpy()[i], full[i, :, :, i].numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tape.batch_jacobian(v, x).numpy(), 2 * a, rtol=1e-15)
    with pytest.raises(ValueError, match=r"first dimensions of target \[5,2,2\] and source \[3\]"):
        tape.batch_jacobian(y, f64([1.0, 2.0, 3.0]))


# ---- integer and bool tensors have no gradient ----------------------------------------
def test_integer_and_bool_sources_and_targets_raise():
    i, b = tc.tensor([1, 2]), tc.tensor([True, False])
    x = tc.Variable([1.0, 2.0], dtype="float64")
    with tc.GradientTape(persistent=True) as tape:
        tape.watch([i, b])
        y = tc.ops.sum(x * i)
        n = i * 2
    with pytest.raises(DTypeError, match=r"^gradient: cannot differentiate with respect to an "
                                         r"int64 tensor"):
        tape.gradient(y, i)
    with pytest.raises(DTypeError, match="with respect to a bool tensor"):
        tape.gradient(y, [x, b])
    with pytest.raises(DTypeError, match="^gradient: cannot differentiate an int64 target"):
        tape.gradient(n, x)
    with pytest.raises(DTypeError, match="int32 target"):
        tc.ops.cast(x, "int32").backward(gradient=tc.tensor([1, 1], dtype="int32"))
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [1.0, 2.0])
    with pytest.raises(TypeError, match="gradient source must be a Tensor"):
        tape.gradient(y, [x, [1.0]])


def test_backward_skips_integer_variables():
    v, k = tc.Variable([1.0, 2.0], dtype="float64"), tc.Variable([2, 3])
    tc.ops.sum(v * k).backward()
    assert v.grad.tolist() == [2.0, 3.0] and k.grad is None


def test_no_gradient_flows_through_an_integer_cast():
    x = tc.Variable([1.7, 2.2], dtype="float64")
    with tc.GradientTape() as tape:
        y = tc.ops.sum(tc.ops.cast(tc.ops.cast(x, "int64"), "float64") * 3.0) + tc.ops.sum(x)
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [1.0, 1.0])


# ---- higher order against torch.autograd ----------------------------------------------
def _mlp_params(rng, sizes):
    return [rand(rng, m, n) * 0.7 for m, n in zip(sizes, sizes[1:])], \
           [rand(rng, n) * 0.1 for n in sizes[1:]]


def _our_mlp(x, ws, bs):
    h = x
    for k, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        if k < len(ws) - 1:
            h = tc.ops.tanh(h)
    return h


def _torch_mlp(x, ws, bs):
    h = x
    for k, (w, b) in enumerate(zip(ws, bs)):
        h = h @ w + b
        if k < len(ws) - 1:
            h = torch.tanh(h)
    return h


def test_hessian_vector_product_of_an_mlp_loss_matches_torch():
    rng = np.random.default_rng(4)
    wv, bv = _mlp_params(rng, [3, 5, 4])
    xv, labels = rand(rng, 6, 3), rng.integers(0, 4, 6)
    vecs = [rand(rng, *w.shape) for w in wv] + [rand(rng, *b.shape) for b in bv]
    ws = [tc.Variable(w, dtype="float64") for w in wv]
    bs = [tc.Variable(b, dtype="float64") for b in bv]
    params = ws + bs
    with tc.GradientTape() as outer:
        with tc.GradientTape() as inner:
            logp = tc.ops.log_softmax(_our_mlp(f64(xv), ws, bs))
            loss = -tc.ops.mean(tc.ops.take_along_axis(logp, tc.tensor(labels[:, None]), axis=1))
        grads = inner.gradient(loss, params)
        gv = tc.ops.sum(tc.ops.stack([tc.ops.sum(g * f64(v)) for g, v in zip(grads, vecs)]))
    hvp = outer.gradient(gv, params)

    tp = [torch.tensor(p, requires_grad=True) for p in wv + bv]
    tloss = torch.nn.functional.cross_entropy(
        _torch_mlp(torch.from_numpy(xv), tp[:2], tp[2:]), torch.from_numpy(labels))
    tg = torch.autograd.grad(tloss, tp, create_graph=True)
    thvp = torch.autograd.grad(sum((g * torch.from_numpy(v)).sum() for g, v in zip(tg, vecs)), tp)
    for ours, theirs in zip(hvp, thvp):
        assert np.abs(theirs.numpy()).max() > 1e-3  # a real second-order term
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_gradient_penalty_trained_through_matches_torch():
    """WGAN-GP style: loss = mean D(real) - mean D(fake) + lam * mean((|dD/dx(mix)| - 1)^2),
    five SGD steps; the parameters agree with torch.autograd (create_graph) to 1e-10."""
    rng = np.random.default_rng(5)
    wv, bv = _mlp_params(rng, [2, 6, 1])
    batches = [(rand(rng, 8, 2), rand(rng, 8, 2) + 1.0, rng.uniform(size=(8, 1)))
               for _ in range(5)]
    lam, lr = 10.0, 0.05
    ws = [tc.Variable(w, dtype="float64") for w in wv]
    bs = [tc.Variable(b, dtype="float64") for b in bv]
    tp = [torch.tensor(p, requires_grad=True) for p in wv + bv]
    for real, fake, eps in batches:
        mix = f64(eps * real + (1 - eps) * fake)
        with tc.GradientTape() as outer:
            with tc.GradientTape() as inner:
                inner.watch(mix)
                d_mix = tc.ops.sum(_our_mlp(mix, ws, bs))
            g = inner.gradient(d_mix, mix)
            norms = tc.ops.sqrt(tc.ops.sum(g * g, axis=1))
            loss = (tc.ops.mean(_our_mlp(f64(real), ws, bs)) - tc.ops.mean(_our_mlp(f64(fake), ws, bs))
                    + lam * tc.ops.mean((norms - 1.0) ** 2))
        for p, gp in zip(ws + bs, outer.gradient(loss, ws + bs)):
            p.assign_sub(gp * lr)

        tmix = torch.tensor(eps * real + (1 - eps) * fake, requires_grad=True)
        tg = torch.autograd.grad(_torch_mlp(tmix, tp[:2], tp[2:]).sum(), tmix, create_graph=True)[0]
        tloss = (_torch_mlp(torch.from_numpy(real), tp[:2], tp[2:]).mean()
                 - _torch_mlp(torch.from_numpy(fake), tp[:2], tp[2:]).mean()
                 + lam * ((tg.pow(2).sum(1).sqrt() - 1.0) ** 2).mean())
        with torch.no_grad():
            for p, gp in zip(tp, torch.autograd.grad(tloss, tp)):
                p -= lr * gp
    for k, (ours, theirs, start) in enumerate(zip(ws + bs, tp, wv + bv)):
        if k < 3:  # training moved them (the output bias cancels out of this loss)
            assert np.abs(theirs.detach().numpy() - start).max() > 1e-3
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-10)


# ---- memory: saved tensors are released after a step ----------------------------------
def _mlp_setup(seed=0):
    rng = np.random.default_rng(seed)
    x = tc.tensor(rand(rng, 16, 4), dtype="float64")
    labels = tc.tensor(rng.integers(0, 3, (16, 1)))
    params = [tc.Variable(rand(rng, 4, 8) * 0.5, dtype="float64"), tc.Variable(np.zeros(8), dtype="float64"),
              tc.Variable(rand(rng, 8, 3) * 0.5, dtype="float64"), tc.Variable(np.zeros(3), dtype="float64")]
    return x, labels, params


def _step(x, labels, params, persistent=False):
    w1, b1, w2, b2 = params
    with tc.GradientTape(persistent=persistent) as tape:
        h = tc.ops.relu(x @ w1 + b1)
        logits = h @ w2 + b2
        loss = -tc.ops.mean(tc.ops.take_along_axis(tc.ops.log_softmax(logits), labels, axis=1))
    refs = [weakref.ref(h), weakref.ref(h.data), weakref.ref(logits), weakref.ref(logits.data)]
    for p, g in zip(params, tape.gradient(loss, params)):
        p.assign_sub(g * 0.1)
    return loss, tape, refs


def test_a_step_keeps_no_activation_alive():
    x, labels, params = _mlp_setup()
    loss, tape, refs = _step(x, labels, params)   # loss and tape are still held
    gc.collect()
    assert [r() for r in refs] == [None] * 4
    assert loss._node.released and loss._node.inputs == ()

    loss, tape, refs = _step(x, labels, params, persistent=True)
    gc.collect()
    assert all(r() is not None for r in refs)     # a persistent tape keeps its graph ...
    del tape
    gc.collect()
    assert [r() for r in refs] == [None] * 4      # ... until it is deleted


def test_backward_releases_the_graph_unless_retained():
    v = tc.Variable([1.0, 2.0], dtype="float64")
    y = tc.ops.sum(tc.ops.exp(v))
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(v.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-15)
    with pytest.raises(RuntimeError, match="freed by an earlier reverse pass"):
        y.backward()


def test_memory_stays_flat_over_many_steps():
    x, labels, params = _mlp_setup(1)

    def live_tensors():
        gc.collect()
        return sum(1 for o in gc.get_objects() if issubclass(type(o), tc.Tensor))

    kept = []
    for step in range(200):
        loss, _, _ = _step(x, labels, params)
        kept.append(loss)                      # keeping every loss keeps only the losses
        if step == 19:
            first = live_tensors()
    assert live_tensors() - first == 180
    assert kept[-1].item() < kept[0].item()
