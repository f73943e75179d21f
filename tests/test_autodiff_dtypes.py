"""Dtypes: float32 by default; float64, float16 and bfloat16 through ops and gradients; torch's
promotion rules for operands of different dtypes, gradients cast back to each input's dtype.

Oracle: torch.autograd in float64 on the same (rounded) input values; tolerances follow each
dtype's precision (float16 has 11 significant bits, bfloat16 8).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainctl as tc

F64 = torch.float64
TOL = {"float64": 1e-12, "float32": 2e-6, "float16": 4e-3, "bfloat16": 3e-2}  # relative to scale


def _ref_tensor(x: tc.Tensor) -> torch.Tensor:
    return x.data.to(F64).clone().requires_grad_(True)


CASES = [
    ("add", lambda a, b: a + b, lambda a, b: a + b),
    ("mul", lambda a, b: a * b, lambda a, b: a * b),
    ("div", lambda a, b: a / (b * b + 1.0), lambda a, b: a / (b * b + 1.0)),
    ("matmul", lambda a, b: a @ tc.ops.transpose(b), lambda a, b: a @ b.T),
    ("maximum", tc.ops.maximum, torch.maximum),
    ("tanh", lambda a, b: tc.ops.tanh(a), lambda a, b: torch.tanh(a)),
    ("exp", lambda a, b: tc.ops.exp(a), lambda a, b: torch.exp(a)),
    ("sigmoid", lambda a, b: tc.ops.sigmoid(a), lambda a, b: torch.sigmoid(a)),
    ("softplus", lambda a, b: tc.ops.softplus(b), lambda a, b: torch.nn.functional.softplus(b)),
    ("relu-sum", lambda a, b: tc.ops.sum(tc.ops.relu(a), axis=1),
     lambda a, b: torch.relu(a).sum(1)),
    ("mean", lambda a, b: tc.ops.mean(a * b, axis=0), lambda a, b: (a * b).mean(0)),
    ("log_softmax", lambda a, b: tc.ops.log_softmax(a), lambda a, b: torch.log_softmax(a, -1)),
    ("logsumexp", lambda a, b: tc.ops.logsumexp(b, axis=1), lambda a, b: torch.logsumexp(b, 1)),
]


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("name, ours, ref", CASES, ids=[c[0] for c in CASES])
def test_ops_and_gradients_in_each_float_dtype(dtype, name, ours, ref):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    a = tc.Variable(rng.uniform(-2, 2, (3, 4)), dtype=dtype)
    b = tc.Variable(rng.uniform(-2, 2, (3, 4)) + 0.05, dtype=dtype)  # no ties with a
    with tc.GradientTape() as tape:
        y = ours(a, b)
        w = tc.tensor(rng.uniform(-1, 1, y.shape), dtype=dtype)
        loss = tc.ops.sum(y * w)
    ga, gb = tape.gradient(loss, [a, b], unconnected_gradients="zero")
    assert {str(t.dtype) for t in (a, y, ga, gb)} == {f"torch.{dtype}"}
    ta, tb, tw = _ref_tensor(a), _ref_tensor(b), w.data.to(F64)
    ty = ref(ta, tb)
    tga, tgb = torch.autograd.grad((ty * tw).sum(), [ta, tb], allow_unused=True)
    tga = torch.zeros_like(ta) if tga is None else tga
    tgb = torch.zeros_like(tb) if tgb is None else tgb
    for got, want in [(y, ty), (ga, tga), (gb, tgb)]:
        want = want.detach().numpy()
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got.data.to(F64).numpy(), want, rtol=TOL[dtype],
                                   atol=TOL[dtype] * scale)


def test_float32_is_the_default():
    assert tc.tensor([1.5]).dtype == torch.float32
    assert tc.tensor(np.array([1.5])).dtype == torch.float32  # numpy float64 too (TensorFlow)
    assert tc.Variable([[0.5]]).dtype == torch.float32
    assert tc.tensor([1]).dtype == torch.int64
    half = tc.tensor([1.0, 2.0], dtype="float16")
    assert (half * 2.5).dtype == torch.float16            # a Python number takes the dtype
    assert (half + np.array([1.0, 1.0])).dtype == torch.float16


PAIRS = [("float16", "float32"), ("bfloat16", "float16"), ("bfloat16", "float64"),
         ("float32", "float64"), ("float16", "float64"), ("bfloat16", "float32")]


@pytest.mark.parametrize("da, db", PAIRS)
def test_promotion_is_torchs_and_gradients_return_to_each_dtype(da, db):
    rng = np.random.default_rng(0)
    a = tc.Variable(rng.uniform(-1, 1, (2, 3)), dtype=da)
    b = tc.Variable(rng.uniform(-1, 1, (3, 2)), dtype=db)
    with tc.GradientTape() as tape:
        prod = a @ b
        total = tc.ops.sum(tc.ops.tanh(prod) * b[:2] + a[:, :2])
    expected = torch.promote_types(a.dtype, b.dtype)
    assert prod.dtype == expected == total.dtype
    for x, y in [(a, b[0, 0]), (a[0, 0], b), (a[0, 0], b[0, 0]), (a, b[:, 0])]:
        assert (x + y).dtype == torch.result_type(x.data, y.data)  # 0-d operands: torch's rule
    ga, gb = tape.gradient(total, [a, b])
    assert ga.dtype == a.dtype and gb.dtype == b.dtype
    ta, tb = _ref_tensor(a), _ref_tensor(b)
    tt = (torch.tanh((ta @ tb).to(expected).to(F64)) * tb[:2] + ta[:, :2]).sum()
    tga, tgb = torch.autograd.grad(tt, [ta, tb])
    tol = max(TOL[da], TOL[db]) if expected != F64 else max(TOL[da], TOL[db], 1e-12)
    np.testing.assert_allclose(ga.data.to(F64).numpy(), tga.numpy(), rtol=tol * 4, atol=tol * 4)
    np.testing.assert_allclose(gb.data.to(F64).numpy(), tgb.numpy(), rtol=tol * 4, atol=tol * 4)


def test_integer_with_float_operands_promote_to_the_float():
    i = tc.tensor([1, 2, 3])
    x = tc.Variable([0.5, 0.25, 2.0], dtype="float16")
    with tc.GradientTape() as tape:
        y = tc.ops.sum(x * i + i)
    assert (x * i).dtype == torch.result_type(x.data, i.data) == torch.float16
    g = tape.gradient(y, x)
    assert g.dtype == torch.float16 and g.tolist() == [1.0, 2.0, 3.0]


def test_device_mismatch_is_still_an_error():
    if not torch.cuda.is_available():
        pytest.skip("needs a second device")
    with pytest.raises(tc.TrainctlError, match="operands are on different devices"):
        tc.tensor([1.0]) + tc.tensor([1.0], device="cuda")
