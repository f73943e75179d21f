"""``trainctl export --with-preprocessing``: the checkpoint's fitted feature transforms in
front of the model, so the ONNX graph takes raw features; matched against
:meth:`trainctl.train.trained.Trained.predict` (preprocessing + model in trainctl) in
onnxruntime; a transform without an exporter is named."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from export_helpers import SPECS, perturb, session  # noqa: E402
from trainctl.cli.app import app  # noqa: E402
from trainctl.data.preprocess import Preprocessing  # noqa: E402
from trainctl.data.transforms import transforms  # noqa: E402
from trainctl.graph import build_model  # noqa: E402
from trainctl.io import save_checkpoint  # noqa: E402
from trainctl.spec import load_spec  # noqa: E402
from trainctl.train.trained import load_trained  # noqa: E402


def spec_path(stem: str):
    return next(p for p in SPECS if p.stem == stem)


def step(name: str, fitted: dict | None = None, **config):
    cls = transforms.get(name)
    t = cls(cls.Config(**config))
    if fitted:
        t.load_fitted_state(fitted)
    return t


def checkpoint(tmp_path, spec, preprocessing: Preprocessing):
    model = build_model(load_spec(spec))
    perturb(model, seed=7)
    return save_checkpoint(tmp_path / "ckpt", model.state_dict(), None,
                           {"step": 0, "preprocessing": preprocessing.to_json()})


def export(spec, ckpt, out):
    return CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(ckpt), "-o", str(out),
                                    "--with-preprocessing"])


def test_columns_inputs_take_one_raw_feature_array(tmp_path):
    spec = spec_path("wine_wide_deep")
    rng = np.random.default_rng(0)
    mean, std = rng.normal(10, 3, 13).astype(np.float32), rng.uniform(0.5, 4, 13).astype(np.float32)
    ckpt = checkpoint(tmp_path, spec, Preprocessing.standardized(mean, std))
    out = tmp_path / "wine.onnx"
    result = export(spec, ckpt, out)
    assert result.exit_code == 0, result.output
    sess = session(out.read_bytes())
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("features", ["batch", 13])]
    assert sess.get_modelmeta().custom_metadata_map["trainctl.inputs"] == "raw"
    raw = (mean + std * rng.normal(size=(6, 13))).astype(np.float32)
    expected = load_trained(spec, ckpt).predict(raw).numpy()
    (theirs,) = sess.run(None, {"features": raw})
    assert np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(theirs, expected, rtol=1e-5, atol=1e-5)


def test_normalize_and_cast_steps(tmp_path):
    spec = spec_path("digits_idx")  # input [8, 8]
    pre = Preprocessing([step("cast", dtype="float64"),
                         step("normalize", {"min": np.float32(0), "max": np.float32(16)})])
    ckpt = checkpoint(tmp_path, spec, pre)
    out = tmp_path / "d.onnx"
    assert export(spec, ckpt, out).exit_code == 0
    raw = np.random.default_rng(1).integers(0, 17, size=(5, 8, 8)).astype(np.float32)
    (theirs,) = session(out.read_bytes()).run(None, {"input": raw})
    np.testing.assert_allclose(theirs, load_trained(spec, ckpt).predict(raw).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_a_step_without_an_exporter_is_named_and_nothing_is_written(tmp_path):
    spec = spec_path("digits_idx")
    ckpt = checkpoint(tmp_path, spec, Preprocessing([step("resize", size=[8, 8])]))
    out = tmp_path / "d.onnx"
    result = export(spec, ckpt, out)
    assert result.exit_code == 2
    assert "step 0 (resize) has no ONNX exporter" in result.output
    assert not out.exists() and not list(tmp_path.glob(".d.onnx*"))


def test_with_preprocessing_is_for_onnx_only(tmp_path):
    spec = spec_path("digits_idx")
    ckpt = checkpoint(tmp_path, spec, Preprocessing())
    result = CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(ckpt), "-o",
                                      str(tmp_path / "m.safetensors"), "--format", "safetensors",
                                      "--with-preprocessing"])
    assert result.exit_code == 2 and "--format onnx only" in result.output
    assert not list(tmp_path.glob("m.*"))


def test_without_the_onnx_package_the_export_says_what_to_install(tmp_path, monkeypatch):
    import sys

    spec = spec_path("digits_idx")
    ckpt = checkpoint(tmp_path, spec, Preprocessing())
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    result = CliRunner().invoke(app, ["export", str(spec), "--checkpoint", str(ckpt), "-o",
                                      str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "pip install 'trainctl[export]'" in result.output
    assert not (tmp_path / "m.onnx").exists()
