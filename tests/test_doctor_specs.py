"""``trainctl doctor`` on deliberately broken specs: each diagnostic (data NaN/Inf, label
range against the output size, class balance, initial loss against ln(classes), activation
scale at initialisation) must name the problem it was built to find."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from trainctl.check.diagnose import doctor_spec
from trainctl.check.runner import SmokeOptions

from test_smoke import GOOD, write

QUICK = SmokeOptions(steps=2, overfit_steps=5, grad_samples=2)
NPZ = """\
name: npz-data
seed: 0
data:
  source: {type: npz, path: data.npz}
  split: {validation: 0.2, test: 0.2}
  batch_size: 8
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: %d}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 1}
"""


def _npz_spec(tmp_path, y, outputs=2, broken=False):
    x = np.random.default_rng(0).standard_normal((len(y), 2)).astype(np.float32)
    if broken:
        x[3, 0], x[10, 1] = np.nan, np.inf
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "data.npz", x=x, y=rng.permutation(np.asarray(y)))
    return write(tmp_path, "spec.yaml", NPZ % outputs)


def _statuses(report):
    return {c.name: c.status for c in report.checks}


def test_nan_and_inf_features_fail_the_data_check(tmp_path):
    report = doctor_spec(_npz_spec(tmp_path, [0, 1] * 50, broken=True), QUICK)
    data = report.check("data")
    assert data.status == "fail" and not report.ok
    # the two planted values, in whichever splits their rows fell
    found = re.findall(r"(\d+) NaN/Inf feature values", data.detail)
    assert sum(map(int, found)) == 2, data.detail


def test_labels_beyond_the_output_size_are_named(tmp_path):
    report = doctor_spec(_npz_spec(tmp_path, [0, 1, 2] * 30, outputs=2), QUICK)
    build = report.check("build")
    assert build.status == "fail"
    assert "outputs shape [2]" in build.detail and "3 classes" in build.detail
    assert all(s == "skip" for n, s in _statuses(report).items()
               if n not in ("validate", "build"))


def test_imbalanced_classes_warn(tmp_path):
    report = doctor_spec(_npz_spec(tmp_path, [0] * 95 + [1] * 5), QUICK)
    data = report.check("data")
    assert data.status == "warn" and "imbalanced" in data.detail
    counts = data.values["class_counts"]
    assert sum(counts) == 60 and counts[0] > 10 * counts[1]


def test_exploding_initialisation_warns_on_scale_and_initial_loss(tmp_path):
    huge = GOOD.replace("activation: relu}",
                        "activation: relu, kernel_initializer: {type: orthogonal, gain: 1.0e+4}}")
    assert huge != GOOD
    report = doctor_spec(write(tmp_path, "huge.yaml", huge), QUICK)
    scales, init = report.check("scales"), report.check("initial_loss")
    assert scales.status == "warn" and "output of 'dense' has std" in scales.detail
    assert "exploding" in scales.detail
    assert init.status == "warn" and "confidently wrong" in init.detail
    assert init.values["expected"] == pytest.approx(math.log(3))
    assert init.values["measured"] > 10 * math.log(3)
    assert report.check("gradcheck").status == "pass"  # the gradients are still right
