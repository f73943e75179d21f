"""``trainctl doctor``: the float64 model gradient check (it must catch a wrong gradient),
the initial loss against ln(C) / ln 2 / mean(y²) and a torch recomputation, weight and
activation scales against numpy, the data checks on crafted data, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import trainctl as tc
from trainctl.check.deadline import Deadline
from trainctl.check.diagnose import DOCTOR, doctor_spec, expected_initial_loss
from trainctl.check.model_grad import gradcheck_model
from trainctl.check.runner import Context, SmokeOptions
from trainctl.cli.app import app
from trainctl.data import Dataset
from trainctl.graph.model import Model
from trainctl.nn.layers import Layer
from trainctl.nn.layers.core import Dense
from trainctl.nn.losses import SparseCategoricalCrossentropy

from test_smoke import DEAD, GOOD, TYPO, write

CHECKS = {c.name: c for c in DOCTOR}


class Scale(Layer):
    """y = x * scale, with a custom gradient that is ``factor`` times the true one for the
    scale (factor 1: correct)."""

    registered_name = "scale"

    def __init__(self, factor: float):
        super().__init__(Layer.Config(), name="scale")
        self.factor = factor

    def build(self, input_shape, device="cpu"):
        self.scale = self.add_weight("scale", (input_shape[-1],), "ones", device)
        return tuple(input_shape)

    def call(self, x, training=False):
        factor = self.factor

        @tc.custom_gradient
        def mul(a, s):
            def grad(up):
                return up * s, tc.ops.sum(up * a, axis=0) * factor
            return a * s, grad

        return mul(x, self.scale)


def _model(factor: float) -> Model:
    torch.manual_seed(0)
    return Model([Dense(units=3, activation="tanh"), Scale(factor)], (4,)).build()


def _batch():
    g = torch.Generator().manual_seed(1)
    return tc.Tensor(torch.randn(4, 4, generator=g)), tc.Tensor(torch.tensor([0, 1, 2, 1]))


def test_gradcheck_model_passes_a_correct_model_and_restores_float32():
    model, (x, y) = _model(1.0), _batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = gradcheck_model(model, SparseCategoricalCrossentropy(from_logits=True), x, y, samples=5)
    assert r.failed == []
    assert r.checked == 5 + 3 + 3  # kernel [4,3] sampled, bias [3] and scale [3] whole
    assert set(r.worst) == {"dense/kernel", "dense/bias", "scale/scale"}
    assert r.kinks == 0  # tanh: smooth everywhere
    assert set(r.directions) == {"direction 1", "direction 2"}
    assert all(d[0] <= 1 for d in r.directions.values())
    for v in model.variables:
        assert v.dtype == torch.float32 and torch.equal(v.data, before[v.name])


def test_gradcheck_model_names_a_wrong_gradient():
    model, (x, y) = _model(2.0), _batch()
    r = gradcheck_model(model, SparseCategoricalCrossentropy(from_logits=True), x, y)
    assert "scale/scale" in r.failed and "dense/kernel" not in r.failed
    ratio, ours, fd = r.worst["scale/scale"]
    assert ours == pytest.approx(2 * fd, rel=1e-6)  # exactly the factor we planted


def test_expected_initial_loss():
    assert expected_initial_loss("sparse_categorical_crossentropy", 10, None)[0] == math.log(10)
    assert expected_initial_loss("categorical_crossentropy", 3, None)[0] == math.log(3)
    assert expected_initial_loss("binary_crossentropy", 1, None)[0] == math.log(2)
    value, formula = expected_initial_loss("mean_squared_error", 1, np.array([1.0, -3.0]))
    assert value == 5.0 and "mean(y²)" in formula
    assert expected_initial_loss("hinge", 1, None) is None


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write(tmp_path_factory.mktemp("doctor"), "good.yaml", GOOD)


@pytest.fixture(scope="module")
def good_report(good):
    return doctor_spec(good, SmokeOptions(steps=3, overfit_steps=40, grad_samples=8))


def test_doctor_runs_every_check_and_passes_a_good_spec(good_report):
    names = [c.name for c in good_report.checks]
    assert names == ["validate", "build", "data", "initial_loss", "scales", "gradients",
                     "gradcheck", "steps", "overfit", "checkpoint", "eval"]
    assert good_report.ok, good_report.summary()
    assert all(c.why for c in good_report.checks)


def test_initial_loss_and_scales_agree_with_a_recomputation(good, good_report):
    from trainctl.spec import load_spec
    from trainctl.train import prepare
    from trainctl.train.loop import to_tensors

    setup = prepare(load_spec(good), "cpu")
    w = {k: v.clone() for k, v in setup.model.state_dict().items()}
    x, y = (t.data for t in to_tensors(next(iter(setup.splits.train.iterate(0))), "cpu"))
    h = F.relu(x @ w["dense/kernel"] + w["dense/bias"])
    logits = h @ w["dense_1/kernel"] + w["dense_1/bias"]
    init = good_report.check("initial_loss").values
    assert init["measured"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-6)
    assert init["expected"] == math.log(3)
    rows = good_report.check("scales").rows
    kernel = next(r for r in rows if r["what"] == "weight kernel [4,8]")
    assert kernel["std"] == pytest.approx(float(np.std(w["dense/kernel"].numpy())), rel=1e-5)
    out = next(r for r in rows if r["layer"] == "dense" and r["what"].startswith("output"))
    assert out["std"] == pytest.approx(float(h.double().std(unbiased=False)), rel=1e-5)
    assert out["zeros"] == pytest.approx(float((h == 0).double().mean()))
    assert out["dead_units"] == pytest.approx(float((h == 0).all(dim=0).double().mean()))
    grad = good_report.check("gradcheck").values
    assert grad["checked"] == 8 + 8 + 8 + 3  # kernels sampled to 8, biases whole


def test_doctor_flags_a_dead_layer(tmp_path):
    report = doctor_spec(write(tmp_path, "dead.yaml", DEAD), SmokeOptions(steps=2,
                                                                          overfit_steps=20))
    scales = report.check("scales")
    assert scales.status == "warn"
    assert "dense/kernel is constant (0)" in scales.detail
    assert "100% of the units of 'dense' are zero" in scales.detail
    assert "vanishing" in scales.detail
    assert report.check("gradients").status == "fail"
    grad = report.check("gradcheck")  # our zero gradients are right, but at a kink of ReLU
    assert grad.status == "pass" and "at a kink" in grad.detail
    # every point moving dense's weights sits at relu(0): 32 + 8 coordinates, 2 directions
    assert grad.values["kinks"] == 32 + 8 + 2
    assert not report.ok


def _data_ctx(x, y, outputs=3, loss="sparse_categorical_crossentropy"):
    ds = Dataset.from_tensor_slices((x, y)).batch(7)
    splits = SimpleNamespace(train=ds, sizes={"train": len(x)})
    setup = SimpleNamespace(splits=splits, loss=SimpleNamespace(registered_name=loss),
                            model=SimpleNamespace(output_shape=(outputs,)))
    return Context(path=Path("x.yaml"), options=SmokeOptions(), deadline=Deadline(None),
                   setup=setup)


def test_data_check_counts_classes_and_finds_problems():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 2)).astype(np.float32)
    y = np.repeat([0, 1, 2], 10)
    check = CHECKS["data"].run(_data_ctx(x, y))
    assert check.status == "pass", check.detail
    assert check.values["class_counts"] == [10, 10, 10] and check.values["balance"] == 1.0

    bad_x = x.copy()
    bad_x[3, 1], bad_x[5, 0] = np.nan, np.inf
    bad_y = y.copy()
    bad_y[0] = 5
    check = CHECKS["data"].run(_data_ctx(bad_x, bad_y))
    assert check.status == "fail"
    assert "2 NaN/Inf feature values" in check.detail
    assert "labels range 0..5" in check.detail and "integers 0..2" in check.detail

    skewed = np.array([0] * 28 + [1, 2])
    check = CHECKS["data"].run(_data_ctx(x, skewed))
    assert check.status == "warn" and "imbalanced" in check.detail
    assert check.values["class_counts"] == [28, 1, 1]
    check = CHECKS["data"].run(_data_ctx(x, np.array([0, 1] * 15)))
    assert check.status == "warn" and "class(es) 2 never appear" in check.detail


def test_data_check_warns_on_regression_targets_far_from_unit_scale():
    x = np.zeros((20, 2), np.float32)
    t = np.linspace(-1.5, 1.5, 20).astype(np.float32)
    check = CHECKS["data"].run(_data_ctx(x, t, outputs=1, loss="mean_squared_error"))
    assert check.status == "pass" and check.values["target_std"] == pytest.approx(np.std(t))
    check = CHECKS["data"].run(_data_ctx(x, t + 150, outputs=1, loss="mean_squared_error"))
    assert check.status == "warn" and "standardize the targets" in check.detail
    assert check.values["target_mean"] == pytest.approx(150, abs=1e-4)


def test_doctor_command(good, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", str(good), "--steps", "2", "--grad-samples", "4"])
    assert result.exit_code == 0, result.output
    for name in ("gradcheck", "initial_loss", "scales", "data", "overfit"):
        assert f"ok   {name}:" in result.stdout
    assert result.stdout.count("why:") == 11
    assert "ln(3)" in result.stdout

    dead = write(tmp_path, "dead.yaml", DEAD)
    result = runner.invoke(app, ["doctor", str(dead), "--steps", "2", "--overfit-steps", "5",
                                 "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False
    assert {c["name"]: c["status"] for c in payload["checks"]}["gradients"] == "fail"

    result = runner.invoke(app, ["doctor", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.stderr


def test_doctor_exits_2_on_an_invalid_spec(tmp_path):
    """README: a bad spec exits 2; doctor agrees (and still prints its report), while smoke
    counts it as a failed spec (exit 1, docs/tools.md)."""
    runner = CliRunner()
    typo = write(tmp_path, "typo.yaml", TYPO)
    result = runner.invoke(app, ["doctor", str(typo)])
    assert result.exit_code == 2, result.output
    assert "batch_szie" in result.stdout and "FAIL" in result.stdout
    result = runner.invoke(app, ["smoke", str(typo)])
    assert result.exit_code == 1, result.output
