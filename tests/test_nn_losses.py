"""Loss tests: per-sample values and gradients against torch.nn.functional /
torch.autograd in float64, huge logits, Keras' probability clipping, shape errors.

torch is used only as an oracle.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn.losses import losses

F64 = torch.float64
B, C = 6, 4


def gen(seed):
    return torch.Generator().manual_seed(seed)


def logits64(seed=0, shape=(B, C)):
    return torch.randn(*shape, generator=gen(seed), dtype=F64) * 2


def probs64(seed=0):
    # softmax of moderate logits: every probability is far from the 1e-7 clip
    return torch.softmax(logits64(seed), dim=-1)


LABELS = torch.tensor([0, 3, 1, 1, 2, 0])
ONE_HOT = F.one_hot(LABELS, C).to(F64)
BIN_LABELS = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=F64)


def loss_fn(name, **options):
    return losses.get(name)(**options)


def normalised(q):
    """Keras divides probabilities by their sum before the log (a no-op in value when they
    already sum to one, but part of the gradient)."""
    return q / q.sum(-1, keepdim=True)


# name, options, our labels, our predictions, torch oracle (per sample, [B])
def _cases():
    x, p = logits64(1), probs64(2)
    u = torch.rand(B, C, generator=gen(3), dtype=F64) + 0.1  # unnormalised scores
    bx = logits64(4, (B, 1))
    bp = torch.sigmoid(bx)
    y = torch.randn(B, 1, generator=gen(5), dtype=F64)
    y2 = torch.randn(B, 3, generator=gen(6), dtype=F64)
    t2 = torch.randn(B, 3, generator=gen(7), dtype=F64)
    return [
        ("sparse_logits", "sparse_categorical_crossentropy", {"from_logits": True}, LABELS, x,
         lambda q: F.cross_entropy(q, LABELS, reduction="none")),
        ("sparse_probs", "sparse_categorical_crossentropy", {"from_logits": False}, LABELS, p,
         lambda q: F.nll_loss(torch.log(normalised(q)), LABELS, reduction="none")),
        # Keras normalises probabilities that do not sum to one
        ("sparse_unnormalised", "sparse_categorical_crossentropy", {}, LABELS, u,
         lambda q: F.nll_loss(torch.log(normalised(q)), LABELS, reduction="none")),
        ("categorical_logits_onehot", "categorical_crossentropy", {"from_logits": True}, ONE_HOT, x,
         lambda q: F.cross_entropy(q, ONE_HOT, reduction="none")),
        ("categorical_logits_ids", "categorical_crossentropy", {"from_logits": True}, LABELS, x,
         lambda q: F.cross_entropy(q, LABELS, reduction="none")),
        ("categorical_probs_onehot", "categorical_crossentropy", {"from_logits": False}, ONE_HOT, p,
         lambda q: -(ONE_HOT * torch.log(normalised(q))).sum(-1)),
        ("categorical_probs_soft", "categorical_crossentropy", {}, probs64(8), p,
         lambda q: -(probs64(8) * torch.log(normalised(q))).sum(-1)),
        ("binary_logits", "binary_crossentropy", {"from_logits": True}, BIN_LABELS, bx,
         lambda q: F.binary_cross_entropy_with_logits(q, BIN_LABELS[:, None], reduction="none").mean(-1)),
        ("binary_probs", "binary_crossentropy", {"from_logits": False}, BIN_LABELS, bp,
         lambda q: F.binary_cross_entropy(q, BIN_LABELS[:, None], reduction="none").mean(-1)),
        ("binary_int_labels", "binary_crossentropy", {"from_logits": True}, BIN_LABELS.long(), bx,
         lambda q: F.binary_cross_entropy_with_logits(q, BIN_LABELS[:, None], reduction="none").mean(-1)),
        ("mse_column", "mean_squared_error", {}, y[:, 0], bx,
         lambda q: F.mse_loss(q, y, reduction="none").mean(-1)),
        ("mse_multi", "mean_squared_error", {}, t2, y2,
         lambda q: F.mse_loss(q, t2, reduction="none").mean(-1)),
    ]


CASES = {c[0]: c[1:] for c in _cases()}


def test_every_registered_loss_is_covered():
    assert {name for name, *_ in CASES.values()} == set(losses.names())


@pytest.mark.parametrize("case", list(CASES))
def test_per_sample_values_equal_torch(case):
    name, options, y_true, y_pred, oracle = CASES[case]
    out = loss_fn(name, **options)(tc.tensor(y_true), tc.tensor(y_pred, dtype="float64"))
    assert out.shape == (B,)
    assert out.dtype == F64
    torch.testing.assert_close(out.data, oracle(y_pred), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_equal_torch_autograd(case):
    name, options, y_true, y_pred, oracle = CASES[case]
    weights = torch.rand(B, generator=gen(9), dtype=F64)  # a non-uniform upstream gradient
    pred = tc.Variable(y_pred, dtype="float64", name="pred")
    with tc.GradientTape() as tape:
        total = tc.ops.sum(loss_fn(name, **options)(tc.tensor(y_true), pred) * tc.tensor(weights))
    ours = tape.gradient(total, pred)

    q = y_pred.clone().requires_grad_(True)
    (theirs,) = torch.autograd.grad((oracle(q) * weights).sum(), [q])
    assert ours.shape == tuple(theirs.shape)
    torch.testing.assert_close(ours.data, theirs, rtol=1e-10, atol=1e-12)


# ---- huge logits --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_huge_logits_stay_finite_and_exact(name, dtype):
    logits = [[1e8, 1e8], [1000.0, -1000.0], [-1000.0, 1000.0], [1e8, -1e8]]
    labels = tc.tensor([1, 0, 0, 1])
    pred = tc.Variable(logits, dtype=dtype, name="logits")
    with tc.GradientTape() as tape:
        out = loss_fn(name, from_logits=True)(labels, pred)
        total = tc.ops.sum(out)
    grad = tape.gradient(total, pred)
    want = [math.log(2.0), 0.0, 2000.0, 2e8]
    assert out.data.tolist() == pytest.approx(want, rel=1e-6, abs=0)
    assert out.data[0].item() == pytest.approx(math.log(2.0), rel=1e-7 if dtype == "float32" else 1e-15)
    # d/dlogits = softmax - one_hot
    want_grad = [[0.5, -0.5], [0.0, 0.0], [-1.0, 1.0], [1.0, -1.0]]
    assert torch.isfinite(grad.data).all()
    torch.testing.assert_close(grad.data.double(), torch.tensor(want_grad, dtype=F64), rtol=0, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_crossentropy_huge_logits(dtype):
    logits = torch.tensor([[1000.0], [-1000.0], [1000.0], [-1000.0], [1e8], [0.0]], dtype=F64)
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0], dtype=F64)
    pred = tc.Variable(logits, dtype=dtype, name="logits")
    with tc.GradientTape() as tape:
        out = loss_fn("binary_crossentropy", from_logits=True)(tc.tensor(labels), pred)
        total = tc.ops.sum(out)
    grad = tape.gradient(total, pred)
    want = F.binary_cross_entropy_with_logits(logits[:, 0], labels, reduction="none")
    assert want.tolist() == pytest.approx([0.0, 0.0, 1000.0, 1000.0, 1e8, math.log(2.0)])
    torch.testing.assert_close(out.data.double(), want, rtol=1e-7, atol=0)
    torch.testing.assert_close(grad.data.double()[:, 0], torch.sigmoid(logits[:, 0]) - labels,
                               rtol=0, atol=1e-7)


def test_probabilities_are_clipped_like_keras():
    eps = 1e-7
    p = torch.tensor([[1.0, 0.0]], dtype=F64)
    sparse = loss_fn("sparse_categorical_crossentropy")(tc.tensor([1]), tc.tensor(p, dtype="float64"))
    assert sparse.data.item() == pytest.approx(-math.log(eps), rel=1e-12)
    sure = loss_fn("sparse_categorical_crossentropy")(tc.tensor([0]), tc.tensor(p, dtype="float64"))
    assert sure.data.item() == pytest.approx(-math.log(1 - eps), rel=1e-9)
    binary = loss_fn("binary_crossentropy")(tc.tensor([1.0, 0.0], dtype="float64"),
                                            tc.tensor([[0.0], [1.0]], dtype="float64"))
    torch.testing.assert_close(binary.data, torch.full((2,), -math.log(eps), dtype=F64),
                               rtol=1e-9, atol=0)  # 1 - (1 - 1e-7) rounds in float64


# ---- shape errors -------------------------------------------------------------------------
@pytest.mark.parametrize("name,y_true,y_pred,label_shape,pred_shape", [
    ("sparse_categorical_crossentropy", torch.tensor([0, 1, 2]), torch.zeros(4, 5), "[3]", "[4,5]"),
    ("sparse_categorical_crossentropy", torch.tensor([[0], [1]]), torch.zeros(2, 5), "[2,1]", "[2,5]"),
    ("categorical_crossentropy", torch.zeros(4, 3), torch.zeros(4, 5), "[4,3]", "[4,5]"),
    ("categorical_crossentropy", torch.tensor([0, 1, 2]), torch.zeros(4, 5), "[3]", "[4,5]"),
    ("binary_crossentropy", torch.zeros(3), torch.zeros(4, 1), "[3]", "[4,1]"),
    ("binary_crossentropy", torch.zeros(4), torch.zeros(4, 2), "[4]", "[4,2]"),
    ("mean_squared_error", torch.zeros(4, 2), torch.zeros(4, 3), "[4,2]", "[4,3]"),
])
def test_shape_mismatch_names_the_loss_and_both_shapes(name, y_true, y_pred, label_shape, pred_shape):
    with pytest.raises(ShapeError) as info:
        loss_fn(name)(tc.tensor(y_true), tc.tensor(y_pred))
    message = str(info.value)
    assert message.startswith(name + ":")
    assert f"labels {label_shape} " in message
    assert f"predictions {pred_shape}" in message


def test_expected_output_shapes():
    assert loss_fn("sparse_categorical_crossentropy").expected_output(10) == (10,)
    assert loss_fn("categorical_crossentropy").expected_output(3) == (3,)
    assert loss_fn("binary_crossentropy").expected_output(2) == (1,)
    assert loss_fn("binary_crossentropy").expected_output(3) is None
    assert loss_fn("mean_squared_error").expected_output(None) is None


def test_loss_config():
    assert loss_fn("binary_crossentropy", from_logits=True).get_config() == \
        {"type": "binary_crossentropy", "from_logits": True}
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="from_logits"):
        loss_fn("mean_squared_error", from_logits=True)


def test_sparse_categorical_crossentropy_per_position_against_torch():
    """Labels [B, T] and logits [B, T, C] (a language model): each sample's loss is the mean
    over its T positions of torch's cross_entropy; gradients match torch.autograd."""
    z = logits64(11, (B, 5, C))
    labels = torch.randint(0, C, (B, 5), generator=gen(12))
    ours_z = tc.Variable(z.clone())
    with tc.GradientTape() as tape:
        per_sample = loss_fn("sparse_categorical_crossentropy", from_logits=True)(
            tc.tensor(labels), ours_z)
        total = tc.ops.sum(per_sample)
    zt = z.clone().requires_grad_(True)
    ref = F.cross_entropy(zt.reshape(-1, C), labels.reshape(-1), reduction="none").reshape(B, 5)
    ref.mean(dim=1).sum().backward()
    assert tuple(per_sample.shape) == (B,)
    torch.testing.assert_close(per_sample.data, ref.mean(dim=1).detach())
    torch.testing.assert_close(tape.gradient(total, ours_z).data, zt.grad)
    with pytest.raises(ShapeError, match=r"labels \[6,4\] do not fit predictions \[6,5,4\]"):
        loss_fn("sparse_categorical_crossentropy")(tc.tensor(labels[:, :4]), tc.tensor(z))
