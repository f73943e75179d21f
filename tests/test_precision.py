"""Mixed precision: the policy of trainctl.backend.precision, the fp16 loss scaler against
torch.amp.GradScaler, and gradients through the casts against torch.autograd."""

import math

import pytest
import torch

import trainctl as tc
from trainctl.autodiff.ops.conv import conv2d
from trainctl.backend.precision import PRECISIONS, compute_dtype, precision_scope
from trainctl.optim.loss_scale import DynamicLossScaler


def _sequence():
    """Gradients of 20 steps; infs and NaNs injected at some steps."""
    gen = torch.Generator().manual_seed(0)
    bad = {2: math.inf, 3: math.nan, 9: -math.inf, 15: math.inf}
    for i in range(20):
        g = torch.randn(3, 4, generator=gen)
        if i in bad:
            g[1, 2] = bad[i]
        yield g


@pytest.mark.parametrize("kwargs", [{}, {"init_scale": 8.0, "growth_interval": 3},
                                    {"init_scale": 3.0e38, "growth_interval": 2,
                                     "growth_factor": 4.0, "backoff_factor": 0.25}])
def test_scaler_takes_gradscalers_decisions_step_by_step(kwargs):
    ours = DynamicLossScaler("cpu", **kwargs)
    ref = torch.amp.GradScaler("cpu", **kwargs)
    p = torch.nn.Parameter(torch.zeros(3, 4))
    opt = torch.optim.SGD([p], lr=1.0)
    for step, g in enumerate(_sequence()):
        scale = ref.get_scale()
        assert float(ours.scale) == float(torch.tensor(scale, dtype=torch.float32)), step
        before = p.detach().clone()
        opt.zero_grad()
        ref.scale((p * g).sum()).backward()  # p.grad = g * scale
        ref.step(opt)
        ref.update()
        ref_skipped = torch.equal(before, p.detach())
        (unscaled,) = ours.unscale([g * float(ours.scale)])
        assert ours.should_skip() == ref_skipped, step
        if not ref_skipped:
            torch.testing.assert_close(unscaled, p.grad, rtol=0, atol=0)  # unscaled in place
        ours.update()
    assert float(ours.scale) == ref.get_scale()
    state = ours.state_dict()
    other = DynamicLossScaler("cpu", **kwargs)
    other.load_state_dict(state)
    assert other.state_dict() == state


def test_scaler_defaults_are_gradscalers():
    ours, ref = DynamicLossScaler(), torch.amp.GradScaler("cpu")
    assert (float(ours.scale), ours.growth_factor, ours.backoff_factor, ours.growth_interval) \
        == (ref.get_scale(), ref.get_growth_factor(), ref.get_backoff_factor(),
            ref.get_growth_interval()) == (2.0**16, 2.0, 0.5, 2000)


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_matmul_and_conv_compute_in_the_low_dtype_and_gradients_flow_back(precision, dtype):
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 7, generator=gen), torch.randn(7, 3, generator=gen)
    x, k = torch.randn(2, 3, 6, 6, generator=gen), torch.randn(4, 3, 3, 3, generator=gen)
    ta, tb, tx, tk = (tc.Variable(t.clone()) for t in (a, b, x, k))
    with precision_scope(precision):
        assert compute_dtype() == dtype
        with tc.GradientTape() as tape:
            y = tc.ops.sum(tc.ops.tanh(ta @ tb)) + tc.ops.sum(tc.ops.tanh(conv2d(tx, tk)))
        grads = tape.gradient(y, [ta, tb, tx, tk])
    assert compute_dtype() is None
    # oracle: torch.autograd with the same casts (torch.autocast's policy for these ops)
    ra, rb, rx, rk = (t.clone().requires_grad_() for t in (a, b, x, k))
    mm = (ra.to(dtype) @ rb.to(dtype)).float()
    cv = torch.nn.functional.conv2d(rx.to(dtype), rk.to(dtype)).float()
    ref_y = torch.tanh(mm).sum() + torch.tanh(cv).sum()
    ref_y.backward()
    assert y.dtype == torch.float32
    torch.testing.assert_close(y.data, ref_y.detach(), rtol=1e-5, atol=1e-4)
    tol = {"bf16": 2e-2, "fp16": 2e-3}[precision]
    for ours, ref in zip(grads, (ra, rb, rx, rk)):
        assert ours.dtype == torch.float32  # gradients of float32 weights are float32
        torch.testing.assert_close(ours.data, ref.grad, rtol=tol, atol=tol)
    # and the low precision is really used: the float32 result differs
    with tc.GradientTape():
        full = tc.ops.sum(tc.ops.tanh(ta @ tb)) + tc.ops.sum(tc.ops.tanh(conv2d(tx, tk)))
    assert float(full.data) != float(y.data)


def test_tf32_sets_torchs_flags_inside_the_scope_only():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with precision_scope("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert compute_dtype() is None  # float32 tensors; TF32 is a CUDA kernel choice
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    assert PRECISIONS == ("fp32", "tf32", "bf16", "fp16")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        with precision_scope("int8"):
            pass


def test_an_fp16_run_scales_the_loss_skips_overflowing_steps_and_checkpoints_the_scale():
    from control_helpers import make_spec, new_trainer, spec_text, weights_of

    trainer = new_trainer(make_spec(spec_text(train="{steps: 60}").replace(
        "device: cpu\n", "device: cpu\nprecision: fp16\n")))
    scaler = trainer.scaler
    assert scaler is not None and trainer.stateful_callbacks()["loss_scale"] is scaler
    # a scale that overflows float16 gradients: the first steps are skipped and it backs off
    scaler.scale = torch.tensor(2.0**40)
    before = weights_of(trainer)
    trainer.fit()
    assert float(scaler.scale) < 2.0**40
    skipped = int(math.log2(2.0**40 / float(scaler.scale)))  # one halving per skipped step
    assert 1 <= skipped < 60 and trainer.setup.optimizer.iterations == 60 - skipped
    assert any(not torch.equal(before[k], v) for k, v in weights_of(trainer).items())
    assert scaler.state_dict() == {"scale": float(scaler.scale), "growth_tracker": 60 - skipped}
