"""Metric tests: Keras' resolution of ``accuracy``, per-sample means over uneven batches
(checked against counts done by hand), logit thresholds."""

from __future__ import annotations

import math

import pytest
import torch

import trainctl as tc
from trainctl.errors import UnknownNameError
from trainctl.nn.metrics import (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                                 build_metric, metrics)


@pytest.mark.parametrize("loss,output_shape,expected", [
    ("binary_crossentropy", (1,), BinaryAccuracy),
    ("binary_crossentropy", (3,), BinaryAccuracy),  # multi-label
    ("mean_squared_error", (1,), BinaryAccuracy),
    ("sparse_categorical_crossentropy", (1,), BinaryAccuracy),
    ("categorical_crossentropy", (5,), CategoricalAccuracy),
    ("sparse_categorical_crossentropy", (10,), SparseCategoricalAccuracy),
    ("mean_squared_error", (4,), SparseCategoricalAccuracy),
])
def test_accuracy_resolution(loss, output_shape, expected):
    metric = build_metric("accuracy", loss, from_logits=False, output_shape=output_shape)
    assert type(metric) is expected
    assert metric.name == "accuracy"


def test_explicit_metric_names_are_not_resolved():
    metric = build_metric("categorical_accuracy", "sparse_categorical_crossentropy", True, (3,))
    assert type(metric) is CategoricalAccuracy
    assert metric.from_logits is True


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UnknownNameError, match="did you mean 'accuracy'"):
        build_metric("acurracy", "binary_crossentropy", False, (1,))


def test_sparse_accuracy_weights_samples_not_batches():
    metric = build_metric("accuracy", "sparse_categorical_crossentropy", True, (3,))
    # batch 1: 4 samples, arg-max [0, 1, 2, 0] vs labels [0, 1, 0, 0] -> 3 right
    metric.update(tc.tensor([0, 1, 0, 0]),
                  tc.tensor([[5.0, 1, 0], [0, 2, 1], [0, 0, 3], [1, 0, -1]]))
    # batch 2 (short): 1 sample, arg-max 2 vs label 1 -> wrong
    metric.update(tc.tensor([1]), tc.tensor([[0.0, 1, 2]]))
    assert metric.count == 5
    assert metric.result() == pytest.approx(3 / 5, abs=1e-15)  # mean of batch means: 0.375
    metric.reset()
    assert math.isnan(metric.result())
    metric.update(tc.tensor([1]), tc.tensor([[0.0, 1, 0]]))
    assert metric.result() == 1.0


def test_sparse_accuracy_over_random_uneven_batches_equals_hand_count():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(23, 4, generator=gen)
    labels = torch.randint(0, 4, (23,), generator=gen)
    right = sum(int(logits[i].argmax() == labels[i]) for i in range(23))
    metric = SparseCategoricalAccuracy()
    for start in range(0, 23, 8):  # batches of 8, 8, 7
        metric.update(tc.tensor(labels[start:start + 8]), tc.tensor(logits[start:start + 8]))
    assert metric.result() == pytest.approx(right / 23, abs=1e-15)


def test_binary_accuracy_from_logits_thresholds_at_zero():
    labels = tc.tensor([0.0, 1.0, 0.0, 1.0])
    scores = tc.tensor([[-0.1], [0.2], [0.3], [0.7]])
    logits_metric = build_metric("accuracy", "binary_crossentropy", True, (1,))
    logits_metric.update(labels, scores)
    # threshold 0: predicted [0, 1, 1, 1] -> 3 of 4 right
    assert logits_metric.result() == pytest.approx(3 / 4, abs=1e-15)
    probs_metric = build_metric("accuracy", "binary_crossentropy", False, (1,))
    probs_metric.update(labels, scores)
    # threshold 0.5: predicted [0, 0, 0, 1] -> 3 of 4 right, but a different three
    probs_metric.update(tc.tensor([1.0]), tc.tensor([[0.4]]))  # 0.4 < 0.5: wrong
    assert probs_metric.result() == pytest.approx(3 / 5, abs=1e-15)
    logits_metric.update(tc.tensor([1.0]), tc.tensor([[0.4]]))  # 0.4 > 0: right
    assert logits_metric.result() == pytest.approx(4 / 5, abs=1e-15)


def test_binary_accuracy_integer_labels_and_short_batch():
    metric = BinaryAccuracy(from_logits=False)
    metric.update(tc.tensor([1, 0, 1]), tc.tensor([[0.9], [0.6], [0.2]]))  # right, wrong, wrong
    metric.update(tc.tensor([0]), tc.tensor([[0.1]]))  # right
    assert metric.result() == pytest.approx(2 / 4, abs=1e-15)


def test_categorical_accuracy_one_hot_and_ids():
    metric = CategoricalAccuracy()
    metric.update(tc.tensor([[0.0, 1, 0], [1, 0, 0]]), tc.tensor([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1]]))
    metric.update(tc.tensor([2]), tc.tensor([[0.1, 0.2, 0.7]]))
    assert metric.result() == pytest.approx(2 / 3, abs=1e-15)


def test_regression_metrics_per_sample_means():
    y = torch.tensor([1.0, 2.0, 3.0])
    p = torch.tensor([[1.5], [1.0], [3.0]])
    mae, mse = metrics.get("mean_absolute_error")(), metrics.get("mean_squared_error")()
    for m in (mae, mse):
        m.update(tc.tensor(y[:2]), tc.tensor(p[:2]))
        m.update(tc.tensor(y[2:]), tc.tensor(p[2:]))
    assert mae.result() == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert mse.result() == pytest.approx((0.25 + 1.0 + 0.0) / 3)
