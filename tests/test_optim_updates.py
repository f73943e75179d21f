"""What every optimizer does around its update: gradient clipping (against
torch.nn.utils.clip_grad_norm_ / clip_grad_value_), gradient accumulation (the weighted
mean of N gradients), the moving average of the weights (closed form and
torch.optim.swa_utils.AveragedModel), their checkpoint state, and no host sync.

Through the Trainer: tests/test_optim_train.py. torch.autograd, torch.optim and
torch.nn.utils are used here only as oracles.
"""

from __future__ import annotations

import pytest
import torch

from trainctl.autodiff import Variable, tensor
from trainctl.optim import (build_optimizer, clip_by_global_norm, clip_by_norm, clip_by_value,
                            averaged_weights)

F64 = torch.float64


def problem():
    """A 2-layer least-squares problem: initial weights and loss(w1, w2)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, generator=gen, dtype=F64)
    y = torch.randn(16, 2, generator=gen, dtype=F64) * 3
    w = [torch.randn(3, 5, generator=gen, dtype=F64), torch.randn(5, 2, generator=gen, dtype=F64)]

    def loss(a, b):
        return ((torch.tanh(x @ a) @ b - y) ** 2).mean()

    return w, loss


def grads_at(loss, values):
    leaves = [v.clone().requires_grad_(True) for v in values]
    return list(torch.autograd.grad(loss(*leaves), leaves))


def variables(values):
    return [Variable(v, dtype=F64, name=f"dense_{i}/kernel") for i, v in enumerate(values)]


# ---- clipping ----------------------------------------------------------------------------
def test_clip_functions_closed_form():
    g = [torch.tensor([3.0, 4.0], dtype=F64), None, torch.tensor([12.0], dtype=F64)]
    out = clip_by_global_norm(g, 6.5)  # global norm 13
    assert out[1] is None
    torch.testing.assert_close(out[0], g[0] * (6.5 / (13 + 1e-6)), rtol=1e-15, atol=0)
    torch.testing.assert_close(out[2], g[2] * (6.5 / (13 + 1e-6)), rtol=1e-15, atol=0)
    assert g[0].tolist() == [3.0, 4.0]  # the caller's gradients are not changed
    assert clip_by_global_norm(g, 100.0)[0].tolist() == [3.0, 4.0]  # under the bound: as is
    each = clip_by_norm(g, 5.0)  # norms 5 (kept, up to the 1e-6) and 12 (scaled to 5)
    torch.testing.assert_close(each[0], g[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(each[2], torch.tensor([5.0], dtype=F64), rtol=1e-6, atol=0)
    assert clip_by_value(g, 3.5)[0].tolist() == [3.0, 3.5]


CLIPPED = [
    ("adam", {"learning_rate": 0.01, "global_clipnorm": 0.5}, "global"),
    ("sgd", {"learning_rate": 0.02, "momentum": 0.9, "global_clipnorm": 0.5}, "global"),
    ("rmsprop", {"learning_rate": 0.005, "clipvalue": 0.2}, "value"),
    ("adagrad", {"learning_rate": 0.1, "clipnorm": 0.3}, "each"),
]


def torch_clip(kind, params, cfg):
    if kind == "global":
        return torch.nn.utils.clip_grad_norm_(params, cfg["global_clipnorm"])
    if kind == "value":
        return torch.nn.utils.clip_grad_value_(params, cfg["clipvalue"])
    return [torch.nn.utils.clip_grad_norm_([p], cfg["clipnorm"]) for p in params]


@pytest.mark.parametrize("name,cfg,kind", CLIPPED)
def test_clipping_matches_torch_nn_utils_for_200_steps(name, cfg, kind):
    init, loss = problem()
    ours = variables(init)
    opt = build_optimizer(name, ours, **cfg)
    theirs = [w.clone().requires_grad_(True) for w in init]
    hyper = {k: v for k, v in cfg.items() if k in ("momentum",)}
    ref = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop,
           "adagrad": torch.optim.Adagrad}[name](theirs, lr=cfg["learning_rate"], **hyper)
    clipped_steps = 0
    for _ in range(200):
        opt.step(grads_at(loss, [p.data for p in ours]))
        ref.zero_grad()
        loss(*theirs).backward()
        before = [t.grad.clone() for t in theirs]
        torch_clip(kind, theirs, cfg)
        clipped_steps += any(not torch.equal(b, t.grad) for b, t in zip(before, theirs))
        ref.step()
        for p, t in zip(ours, theirs):
            torch.testing.assert_close(p.data, t.detach(), rtol=1e-6, atol=1e-12)
    assert clipped_steps >= 20  # the clipping really acted


# ---- accumulation ------------------------------------------------------------------------
def test_accumulation_applies_the_weighted_mean_every_n_gradients():
    init, loss = problem()
    ours, single = variables(init), variables(init)
    opt = build_optimizer("adam", ours, learning_rate=0.05, gradient_accumulation_steps=3)
    ref = build_optimizer("adam", single, learning_rate=0.05)
    gen = torch.Generator().manual_seed(0)
    rounds = [[(torch.randn(3, 5, generator=gen, dtype=F64),
                None if i == 1 else torch.randn(5, 2, generator=gen, dtype=F64), w)
               for i, w in enumerate((4, 2, 1))] for _ in range(3)]
    for micro in rounds:
        applied = [opt.step([a, b], weight=w) for a, b, w in micro]
        assert applied == [False, False, True]
        mean_a = sum(a * w for a, _, w in micro) / 7
        mean_b = sum(b * w for _, b, w in micro if b is not None) / 7  # no gradient: zero
        ref.step([mean_a, mean_b])
        for p, q in zip(ours, single):
            torch.testing.assert_close(p.data, q.data, rtol=1e-13, atol=1e-15)
    assert opt.iterations == 3 and opt.steps == {"dense_0/kernel": 3, "dense_1/kernel": 3}


def test_flush_applies_a_partial_accumulation():
    p = Variable([1.0], dtype=F64, name="w")
    opt = build_optimizer("sgd", [p], learning_rate=0.5, gradient_accumulation_steps=4)
    assert opt.flush() is False
    opt.step([tensor([1.0], dtype=F64)], weight=3)
    opt.step([tensor([-1.0], dtype=F64)], weight=1)
    assert p.data.item() == 1.0 and opt.iterations == 0
    assert opt.flush() is True
    assert p.data.item() == 1.0 - 0.5 * (3 - 1) / 4 and opt.iterations == 1
    assert opt.flush() is False
    with pytest.raises(ValueError, match="weight"):
        opt.step([tensor([1.0], dtype=F64)], weight=0)
    no_accumulation = build_optimizer("sgd", [p], learning_rate=0.5)
    assert no_accumulation.step([tensor([1.0], dtype=F64)], weight=7) is True  # weight ignored
    assert p.data.item() == 0.25


# ---- moving average of the weights -------------------------------------------------------
def closed_form_ema(weights, m):
    """ema_t = m^(t−1)·w₁ + (1 − m)·Σ_{k=2..t} m^(t−k)·w_k, for t = 1, 2, ..."""
    out = []
    for t in range(1, len(weights) + 1):
        out.append(m ** (t - 1) * weights[0] +
                   (1 - m) * sum(m ** (t - k) * weights[k - 1] for k in range(2, t + 1)))
    return out


def test_ema_closed_form():
    p = Variable([0.0], dtype=F64, name="w")
    opt = build_optimizer("sgd", [p], learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    weights, shadows = [], []
    for _ in range(6):
        opt.step([tensor([1.0], dtype=F64)])
        weights.append(p.data.item())
        shadows.append(opt.get_slot(p, "ema").item())
    assert weights == pytest.approx([-0.1 * t for t in range(1, 7)], rel=1e-12)
    # e.g. ema_2 = 0.9·(−0.1) + 0.1·(−0.2) = −0.11
    assert shadows[:2] == pytest.approx([-0.1, -0.11], rel=1e-12)
    assert shadows == pytest.approx(closed_form_ema(weights, 0.9), rel=1e-12)


def test_ema_matches_torch_averaged_model():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    init, loss = problem()
    ours = variables(init)
    opt = build_optimizer("adam", ours, learning_rate=0.01, use_ema=True, ema_momentum=0.95)
    module = torch.nn.ParameterList([torch.nn.Parameter(w.clone()) for w in init])
    averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(0.95))
    for _ in range(50):
        opt.step(grads_at(loss, [p.data for p in ours]))
        with torch.no_grad():
            for param, p in zip(module, ours):
                param.copy_(p.data)  # the same trajectory, averaged by torch
        averaged.update_parameters(module)
    for p, avg in zip(ours, averaged.module):
        torch.testing.assert_close(opt.get_slot(p, "ema"), avg.detach(), rtol=1e-12, atol=1e-15)


def test_ema_weights_swaps_in_and_back():
    p = Variable([1.0, 2.0], dtype=F64, name="w")
    opt = build_optimizer("sgd", [p], learning_rate=1.0, use_ema=True, ema_momentum=0.5)
    with opt.ema_weights():  # no update yet: no average, nothing changes
        assert p.data.tolist() == [1.0, 2.0]
    opt.step([tensor([1.0, 1.0], dtype=F64)])   # w = [0, 1], ema = w
    opt.step([tensor([2.0, -2.0], dtype=F64)])  # w = [-2, 3], ema = [-1, 2]
    trained = p.data
    with opt.ema_weights():
        assert p.data.tolist() == [-1.0, 2.0]
    assert p.data is trained and p.data.tolist() == [-2.0, 3.0]
    with pytest.raises(RuntimeError):
        with opt.ema_weights():
            raise RuntimeError("evaluation failed")
    assert p.data.tolist() == [-2.0, 3.0]  # put back on an error too
    plain = build_optimizer("sgd", [p], learning_rate=1.0)
    with plain.ema_weights():
        assert p.data is trained


# ---- checkpoint state ----------------------------------------------------------------------
SHARED = {"gradient_accumulation_steps": 3, "use_ema": True, "ema_momentum": 0.9,
          "global_clipnorm": 0.5}


@pytest.mark.parametrize("name,cfg", [("adam", {"learning_rate": 0.01, **SHARED}),
                                      ("lion", {"learning_rate": 0.001, **SHARED}),
                                      ("rmsprop", {"centered": True, "momentum": 0.9, **SHARED})])
@pytest.mark.parametrize("stop", [4, 6])  # mid-accumulation, and right after an update
def test_state_dict_round_trip_with_accumulation_and_ema(name, cfg, stop):
    init, loss = problem()
    a, b = variables(init), variables(init)
    opt_a = build_optimizer(name, a, **cfg)

    def run(opt, params, start, n):
        for i in range(start, start + n):
            opt.step(grads_at(loss, [p.data for p in params]), weight=1 + i % 2)

    run(opt_a, a, 0, stop)
    tensors, meta = opt_a.state_dict()
    assert meta["accumulation"] == ({"count": 1, "weight": 2.0} if stop == 4 else
                                    {"count": 0, "weight": 0.0})
    assert {k.rsplit("/", 1)[1] for k in tensors} >= {"ema"}
    assert any(k.endswith("/grad_accum") for k in tensors) == (stop == 4)
    for p, q in zip(a, b):
        q.assign(p.data)
    opt_b = build_optimizer(name, b)  # defaults: the saved config replaces them
    opt_b.load_state_dict({k: v.clone() for k, v in tensors.items()}, dict(meta))
    assert opt_b.get_config() == opt_a.get_config()
    run(opt_a, a, stop, 7)
    run(opt_b, b, stop, 7)
    for pa, pb in zip(a, b):
        assert torch.equal(pa.data, pb.data)
        assert torch.equal(opt_a.get_slot(pa, "ema"), opt_b.get_slot(pb, "ema"))


def test_load_state_dict_with_ema_turned_on_or_off():
    p = Variable([1.0], dtype=F64, name="w")
    opt = build_optimizer("sgd", [p], learning_rate=0.1, use_ema=True)
    opt.step([tensor([1.0], dtype=F64)])
    tensors, meta = opt.state_dict()
    assert sorted(tensors) == ["w/ema"]
    off = build_optimizer("sgd", [p])
    off.load_state_dict(tensors, {**meta, "config": {**meta["config"], "use_ema": False}})
    assert off.average is None and off.state_dict()[0] == {}  # the shadow is dropped
    plain_tensors, plain_meta = off.state_dict()
    on = build_optimizer("sgd", [p])
    on.load_state_dict(plain_tensors, {**plain_meta, "config": {**plain_meta["config"],
                                                               "use_ema": True}})
    on.step([tensor([1.0], dtype=F64)])  # the average starts at the next update
    assert on.get_slot(p, "ema").item() == p.data.item()
    with pytest.raises(KeyError, match="no slot 'm'"):
        on.get_slot(p, "m")


def test_averaged_weights_of_a_checkpoint():
    weights = {"a": torch.zeros(2), "b": torch.ones(1)}
    assert averaged_weights(weights, None) == weights
    out = averaged_weights(weights, {"a/ema": torch.full((2,), 3.0), "a/m": torch.ones(2)})
    assert out["a"].tolist() == [3.0, 3.0] and out["b"] is weights["b"]


# ---- no host sync ------------------------------------------------------------------------
def test_shared_options_do_not_sync(monkeypatch):
    ps = [Variable([1.0, 2.0], dtype=F64, name="a/kernel"), Variable([0.5], dtype=F64, name="a/bias")]
    opt = build_optimizer("adamw", ps, learning_rate=0.1, global_clipnorm=0.1,
                          gradient_accumulation_steps=2, use_ema=True,
                          weight_decay_exclude=["*/bias"],
                          groups=[{"match": "a/kernel", "learning_rate": 0.05}])

    def no_sync(self, *args):
        raise AssertionError("a tensor was read back to the host in a step")

    for attr in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, attr, no_sync)
    for i in range(5):
        opt.step([tensor([0.5, -0.5], dtype=F64), None if i == 2 else tensor([1.0], dtype=F64)],
                 weight=2)
    opt.flush()
    with opt.ema_weights():
        pass
    monkeypatch.undo()
    assert opt.iterations == 3


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "lion"])
def test_cuda_step_never_synchronises_and_matches_the_cpu(name):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    init, loss = problem()
    cfg = {"global_clipnorm": 0.5, "gradient_accumulation_steps": 2, "use_ema": True,
           "groups": [{"match": "dense_1/*", "learning_rate": 0.001, "weight_decay": 0.01}]}
    cpu, gpu = variables(init), [Variable(w, dtype=F64, device="cuda", name=f"dense_{i}/kernel")
                                 for i, w in enumerate(init)]
    opt_cpu, opt_gpu = build_optimizer(name, cpu, **cfg), build_optimizer(name, gpu, **cfg)
    grads = grads_at(loss, [p.data for p in cpu])
    cuda_grads = [g.cuda() for g in grads]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        for i in range(7):
            opt_gpu.step(cuda_grads, weight=1 + i % 3)
        opt_gpu.flush()
        with opt_gpu.ema_weights():
            pass
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for i in range(7):
        opt_cpu.step(grads, weight=1 + i % 3)
    opt_cpu.flush()
    for p, q in zip(cpu, gpu):
        torch.testing.assert_close(q.data.cpu(), p.data, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(opt_gpu.get_slot(q, "ema").cpu(), opt_cpu.get_slot(p, "ema"),
                                   rtol=1e-6, atol=1e-12)
