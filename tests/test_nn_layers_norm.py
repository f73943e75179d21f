"""batch_normalization, layer_normalization, reshape and permute against torch (float64):
train and eval modes, Keras' momentum mapped to torch's, moving statistics non-trainable,
gradients via our tape vs torch.autograd. torch.nn is used only as an oracle."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn.layers import BatchNormalization, LayerNormalization, Permute, Reshape

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def bn64(shape, **opts):
    layer = BatchNormalization(**opts)
    layer.build(shape)
    for i, w in enumerate(layer.weights):
        w.data = w.data.to(F64)
    if layer.gamma is not None:
        layer.gamma.data = 1 + 0.1 * randn(*layer.gamma.shape, seed=20)
        layer.beta.data = randn(*layer.beta.shape, seed=21)
    return layer


@pytest.mark.parametrize("shape, torch_bn", [((5,), torch.nn.BatchNorm1d),
                                             ((3, 4, 4), torch.nn.BatchNorm2d)])
def test_batch_norm_train_then_eval_equals_torch(shape, torch_bn):
    layer = bn64(shape, momentum=0.9, epsilon=1e-3)
    c = shape[0]
    assert [w.name for w in layer.weights if not w.trainable] == [
        "batch_normalization/moving_mean", "batch_normalization/moving_variance"]
    assert len(layer.trainable_weights) == 2
    ref = torch_bn(c, eps=1e-3, momentum=1 - 0.9, dtype=F64)  # torch: new = (1-m)·old + m·batch
    with torch.no_grad():
        ref.weight.copy_(layer.gamma.data)
        ref.bias.copy_(layer.beta.data)
    ref.train()
    n = 6
    for step in range(3):
        x = 2 + 3 * randn(n, *shape, seed=step)
        torch.testing.assert_close(layer(tc.tensor(x), training=True).data, ref(x).detach(),
                                   rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(layer.moving_mean.data, ref.running_mean)
    # torch's running variance uses the unbiased batch variance, Keras the biased one: here
    # the moving variance is recomputed from the same batches with correction 0
    dims = tuple(i for i in range(len(shape) + 1) if i != 1)
    var = torch.ones(c, dtype=F64)
    for step in range(3):
        x = 2 + 3 * randn(n, *shape, seed=step)
        var = 0.9 * var + 0.1 * x.var(dim=dims, correction=0)
    torch.testing.assert_close(layer.moving_variance.data, var)
    # evaluation uses the moving statistics: torch's eval with our statistics loaded
    with torch.no_grad():
        ref.running_var.copy_(var)
    ref.eval()
    x = randn(4, *shape, seed=9)
    before = layer.moving_mean.data.clone()
    torch.testing.assert_close(layer(tc.tensor(x)).data, ref(x).detach(), rtol=1e-10, atol=1e-10)
    assert torch.equal(layer.moving_mean.data, before)  # evaluation leaves them alone


def test_batch_norm_keras_defaults_and_channels_last_axis():
    layer = BatchNormalization()
    assert (layer.config.momentum, layer.config.epsilon, layer.config.axis) == (0.99, 1e-3, 1)
    layer = bn64((4, 3), axis=-1)  # [steps, features], features last
    x = randn(5, 4, 3, seed=2)
    want = torch.nn.functional.batch_norm(x.reshape(20, 3), None, None, layer.gamma.data,
                                          layer.beta.data, training=True, eps=1e-3)
    torch.testing.assert_close(layer(tc.tensor(x), training=True).data, want.reshape(5, 4, 3))
    torch.testing.assert_close(layer.moving_mean.data, 0.01 * x.mean(dim=(0, 1)))


def test_batch_norm_gradients_equal_torch_autograd():
    layer = bn64((3, 2, 2))
    xt, up = randn(4, 3, 2, 2, seed=3), randn(4, 3, 2, 2, seed=4)
    x = tc.Variable(xt, dtype="float64")
    with tc.GradientTape() as tape:
        loss = tc.ops.sum(layer(x, training=True) * tc.tensor(up))
    ours = tape.gradient(loss, [layer.gamma, layer.beta, x])
    g = layer.gamma.data.clone().requires_grad_(True)
    b = layer.beta.data.clone().requires_grad_(True)
    xr = xt.clone().requires_grad_(True)
    y = torch.nn.functional.batch_norm(xr, None, None, g, b, training=True, eps=1e-3)
    torch.autograd.backward((y * up).sum())
    for a, want in zip(ours, (g.grad, b.grad, xr.grad)):
        torch.testing.assert_close(a.data, want, rtol=1e-9, atol=1e-10)


def test_layer_norm_equals_torch():
    layer = LayerNormalization(axis=[-2, -1], epsilon=1e-5)
    layer.build((3, 4))
    layer.gamma.data = randn(3, 4, seed=1)
    layer.beta.data = randn(3, 4, seed=2)
    ref = torch.nn.LayerNorm((3, 4), eps=1e-5, dtype=F64)
    with torch.no_grad():
        ref.weight.copy_(layer.gamma.data)
        ref.bias.copy_(layer.beta.data)
    xt, up = randn(5, 3, 4, seed=3), randn(5, 3, 4, seed=4)
    x = tc.Variable(xt, dtype="float64")
    with tc.GradientTape() as tape:
        y = layer(x)
        loss = tc.ops.sum(y * tc.tensor(up))
    gg, gx = tape.gradient(loss, [layer.gamma, x])
    xr = xt.clone().requires_grad_(True)
    want = ref(xr)
    torch.testing.assert_close(y.data, want.detach(), rtol=1e-10, atol=1e-10)
    torch.autograd.backward((want * up).sum())
    torch.testing.assert_close(gg.data, ref.weight.grad, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gx.data, xr.grad, rtol=1e-9, atol=1e-10)


def test_reshape_and_permute():
    x = randn(2, 3, 4, seed=5)
    r = Reshape(target_shape=[-1, 2])
    assert r.build((3, 4)) == (6, 2)
    torch.testing.assert_close(r(tc.tensor(x)).data, x.reshape(2, 6, 2))
    p = Permute(dims=[2, 1])
    assert p.build((3, 4)) == (4, 3)
    torch.testing.assert_close(p(tc.tensor(x)).data, x.permute(0, 2, 1))


@pytest.mark.parametrize("layer, shape, words", [
    (Reshape(target_shape=[5, -1]), (3, 4), "cannot reshape"),
    (Reshape(target_shape=[-1, -1]), (3, 4), "at most one -1"),
    (Permute(dims=[1, 3]), (3, 4), "permutation of 1..2"),
    (BatchNormalization(axis=0), (3, 4), "not a feature axis"),
    (BatchNormalization(axis=3), (3, 4), "not a feature axis"),
    (LayerNormalization(axis=[1, -3]), (3, 4), "not a feature axis"),
])
def test_shape_errors(layer, shape, words):
    with pytest.raises(ShapeError, match=words):
        layer.build(shape)


def test_batch_norm_without_scale_and_center():
    layer = BatchNormalization(scale=False, center=False, momentum=0.5)
    layer.build((3,))
    assert [w.name.split("/")[1] for w in layer.weights] == ["moving_mean", "moving_variance"]
    for w in layer.weights:
        w.data = w.data.to(F64)
    x = randn(8, 3, seed=6)
    y = layer(tc.tensor(x), training=True).data
    mean, var = x.mean(0), x.var(0, correction=0)
    torch.testing.assert_close(y, (x - mean) / torch.sqrt(var + 1e-3))
    torch.testing.assert_close(layer.moving_mean.data, 0.5 * mean)
    torch.testing.assert_close(layer.moving_variance.data, 0.5 + 0.5 * var)
    x2 = randn(4, 3, seed=7)
    want = (x2 - 0.5 * mean) / torch.sqrt(0.5 + 0.5 * var + 1e-3)
    torch.testing.assert_close(layer(tc.tensor(x2)).data, want)


def test_moving_statistics_are_model_state_but_not_trained():
    from trainctl.graph import Model
    tc.manual_seed(0)
    model = Model([BatchNormalization(name="bn"), Reshape(target_shape=[12])], (3, 2, 2)).build()
    names = sorted(model.state_dict())
    assert names == ["bn/beta", "bn/gamma", "bn/moving_mean", "bn/moving_variance"]
    assert sorted(v.name for v in model.trainable_variables) == ["bn/beta", "bn/gamma"]
    model(tc.tensor(torch.randn(5, 3, 2, 2) + 4.0), training=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert state["bn/moving_mean"].min().item() > 0.03  # moved from 0 towards 4
    fresh = Model([BatchNormalization(name="bn"), Reshape(target_shape=[12])], (3, 2, 2)).build()
    fresh.load_state_dict(state)
    x = tc.tensor(torch.randn(2, 3, 2, 2))
    torch.testing.assert_close(fresh(x).data, model(x).data)
