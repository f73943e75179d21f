"""Metric values: closed forms on hand-made inputs, scikit-learn's metrics functions as the
oracle on random ones, and the same result whatever the batch sizes (streaming, exact for
a short last batch)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

import trainctl as tc
from trainctl.nn.metrics import build_metric, metrics
from trainctl.nn.metrics_classes import binary_auc


def make(name: str, output_shape, from_logits=False, **options):
    cls = metrics.get(name)
    return cls(cls.Config(**options), from_logits=from_logits, output_shape=output_shape)


def feed(metric, y, p, sizes):
    """Update ``metric`` with consecutive batches of the given sizes."""
    start = 0
    for size in sizes:
        metric.update(tc.tensor(y[start:start + size]), tc.tensor(p[start:start + size]))
        start += size
    assert start == len(y)
    return metric


BATCHINGS = [(10,), (3, 3, 3, 1), (7, 2, 1), (1,) * 10]

# ---- hand-made inputs, closed forms ------------------------------------------------------

Y3 = torch.tensor([0, 1, 2, 2, 1, 0, 2, 1, 0, 2])
P3 = torch.tensor([[.8, .1, .1], [.1, .7, .2], [.2, .2, .6], [.5, .1, .4], [.3, .3, .4],
                   [.1, .8, .1], [.1, .2, .7], [.1, .6, .3], [.6, .3, .1], [.3, .3, .4]])
# arg-max: 0 1 2 0 2 1 2 1 0 2 -> confusion (rows label, cols prediction):
#   label 0: [2, 1, 0]; label 1: [0, 2, 1]; label 2: [1, 0, 3]
PRECISION = [2 / 3, 2 / 3, 3 / 4]
RECALL = [2 / 3, 2 / 3, 3 / 4]
F1 = [2 * 2 / (3 + 3), 2 * 2 / (3 + 3), 2 * 3 / (4 + 4)]


@pytest.mark.parametrize("sizes", BATCHINGS)
def test_confusion_metrics_closed_form(sizes):
    for name, per_class in (("precision", PRECISION), ("recall", RECALL), ("f1", F1)):
        m = feed(make(name, (3,), average="per_class"), Y3, P3, sizes)
        assert m.results() == pytest.approx(
            {f"{name}_class_{c}": v for c, v in enumerate(per_class)}, abs=1e-15)
        assert feed(make(name, (3,), average="macro"), Y3, P3, sizes).result() == \
            pytest.approx(sum(per_class) / 3, abs=1e-15)
        assert feed(make(name, (3,), average="micro"), Y3, P3, sizes).result() == \
            pytest.approx(7 / 10, abs=1e-15)  # = accuracy for one label per sample
        weighted = (3 * per_class[0] + 3 * per_class[1] + 4 * per_class[2]) / 10
        assert feed(make(name, (3,), average="weighted"), Y3, P3, sizes).result() == \
            pytest.approx(weighted, abs=1e-15)


@pytest.mark.parametrize("sizes", BATCHINGS)
def test_accuracies_closed_form(sizes):
    assert feed(make("sparse_categorical_accuracy", (3,)), Y3, P3, sizes).result() == \
        pytest.approx(0.7, abs=1e-15)
    onehot = torch.nn.functional.one_hot(Y3, 3).float()
    assert feed(make("categorical_accuracy", (3,)), onehot, P3, sizes).result() == \
        pytest.approx(0.7, abs=1e-15)
    assert feed(make("top_k_accuracy", (3,), k=1), Y3, P3, sizes).result() == \
        pytest.approx(0.7, abs=1e-15)
    # top-2: at most one class beats the label's score in every sample
    assert feed(make("top_k_accuracy", (3,), k=2), Y3, P3, sizes).result() == 1.0
    last = torch.tensor([[.1, .2, .7]])  # label 0 is beaten by two classes: out of the top 2
    y, p = torch.cat([Y3, torch.tensor([0])]), torch.cat([P3, last])
    assert feed(make("top_k_accuracy", (3,), k=2), y, p, sizes[:-1] + (sizes[-1] + 1,)).result() \
        == pytest.approx(10 / 11, abs=1e-15)


def test_top_k_counts_ties_in_the_top_k_like_in_top_k():
    p = torch.tensor([[0.4, 0.4, 0.2], [0.5, 0.3, 0.2]])
    m = feed(make("top_k_accuracy", (3,), k=1), torch.tensor([1, 1]), p, (2,))
    assert m.result() == 0.5  # sample 0: no class scores higher than label 1's 0.4


def test_binary_precision_recall_f1_from_logits_and_probabilities():
    y = torch.tensor([1., 1., 1., 0., 0., 0., 1., 0.])
    logits = torch.tensor([[2.], [-1.], [0.5], [0.3], [-2.], [-0.1], [3.], [-4.]])
    # predicted positive (logit > 0): 1 1 1 0 ... -> samples 0, 2, 3, 6: tp 3, fp 1, fn 1
    for from_logits, scores in ((True, logits), (False, torch.sigmoid(logits))):
        assert feed(make("precision", (1,), from_logits), y, scores, (5, 3)).result() == 0.75
        assert feed(make("recall", (1,), from_logits), y, scores, (5, 3)).result() == 0.75
        assert feed(make("f1", (1,), from_logits), y, scores, (5, 3)).result() == 0.75
        macro = feed(make("f1", (1,), from_logits, average="macro"), y, scores, (8,)).result()
        assert macro == pytest.approx((0.75 + 0.75) / 2, abs=1e-15)  # class 0: tp 3 fp 1 fn 1


def test_zero_division_gives_zero_and_macro_skips_absent_classes():
    y = torch.tensor([0, 0, 1])
    p = torch.tensor([[1., 0, 0], [1., 0, 0], [1., 0, 0]])  # class 1 never predicted, 2 absent
    assert feed(make("precision", (3,), average="per_class"), y, p, (3,)).results() == {
        "precision_class_0": 2 / 3, "precision_class_1": 0.0, "precision_class_2": 0.0}
    assert feed(make("precision", (3,)), y, p, (3,)).result() == pytest.approx(1 / 3, abs=1e-15)


def test_auc_closed_form_with_ties():
    # positives 0.9, 0.5, 0.5; negatives 0.5, 0.1: pairs (pos > neg) 1,1 / .5,1 / .5,1
    scores = torch.tensor([0.9, 0.5, 0.5, 0.5, 0.1])
    labels = torch.tensor([True, True, True, False, False])
    assert binary_auc(scores, labels) == pytest.approx((2 + 1.5 + 1.5) / 6, abs=1e-15)
    assert math.isnan(binary_auc(scores, torch.ones(5, dtype=torch.bool)))


@pytest.mark.parametrize("sizes", BATCHINGS)
def test_regression_closed_form(sizes):
    y = torch.arange(10, dtype=torch.float32)
    p = (y + torch.tensor([1., -1, 2, -2, 0, 0, 1, -1, 3, -3])).reshape(10, 1)
    assert feed(make("mean_absolute_error", (1,)), y, p, sizes).result() == pytest.approx(1.4)
    assert feed(make("mean_squared_error", (1,)), y, p, sizes).result() == pytest.approx(3.0)
    assert feed(make("root_mean_squared_error", (1,)), y, p, sizes).result() == \
        pytest.approx(math.sqrt(3.0))
    # SST of 0..9 = 82.5, SSE = 30
    assert feed(make("r2", (1,)), y, p, sizes).result() == pytest.approx(1 - 30 / 82.5, abs=1e-12)


def test_r2_keeps_precision_for_large_target_means():
    y = torch.tensor([1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4], dtype=torch.float64)
    p = (y + torch.tensor([0.5, -0.5, 0.5, -0.5], dtype=torch.float64)).reshape(4, 1)
    # SST = 5, SSE = 1: a sum-of-squares formula in float64 would lose every digit here
    assert feed(make("r2", (1,)), y, p, (1, 2, 1)).result() == pytest.approx(0.8, abs=1e-9)


def test_perplexity_closed_form():
    y = torch.tensor([0, 1, 1])
    p = torch.tensor([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]], dtype=torch.float64)
    expected = math.exp(-(math.log(0.5) + math.log(0.75) + math.log(0.1)) / 3)
    assert feed(make("perplexity", (2,)), y, p, (2, 1)).result() == pytest.approx(expected, abs=1e-12)
    logits = torch.log(p)  # log-probabilities are logits of the same softmax
    assert feed(make("perplexity", (2,), True), y, logits, (1, 2)).result() == \
        pytest.approx(expected, abs=1e-6)
    # per token for outputs [T, C]: 2 samples of 3 tokens
    tokens = feed(make("perplexity", (3, 2)), y.repeat(2, 1), p.repeat(2, 1, 1), (1, 1)).result()
    assert tokens == pytest.approx(expected, abs=1e-12)


def test_nan_before_any_update_and_reset():
    for name in metrics.names():
        if name == "accuracy":
            continue
        m = make(name, (3,))
        assert all(math.isnan(v) for v in m.results().values()), name
    m = feed(make("f1", (3,)), Y3, P3, (10,))
    m.reset()
    assert math.isnan(m.result()) and m.count == 0


# ---- scikit-learn as the oracle ---------------------------------------------------------

def _random(seed: int, n: int, classes: int):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=gen) * 2
    labels = torch.randint(0, classes, (n,), generator=gen)
    return labels, logits


SIZES_37 = [(37,), (16, 16, 5), (5,) * 7 + (2,)]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("sizes", SIZES_37)
def test_classification_against_sklearn(seed, sizes):
    y, logits = _random(seed, 37, 5)
    pred = logits.argmax(1).numpy()
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        for average in ("macro", "micro", "weighted"):
            got = feed(make(name, (5,), True, average=average), y, logits, sizes).result()
            assert got == pytest.approx(fn(y, pred, average=average, zero_division=0), abs=1e-12)
        per_class = feed(make(name, (5,), True, average="per_class"), y, logits, sizes).results()
        expected = fn(y, pred, average=None, labels=range(5), zero_division=0)
        assert list(per_class.values()) == pytest.approx(list(expected), abs=1e-12)
    probs = torch.softmax(logits.double(), 1).numpy()
    assert feed(make("auc", (5,), True), y, logits, sizes).result() == \
        pytest.approx(skm.roc_auc_score(y, probs, multi_class="ovr"), abs=1e-9)
    for k in (1, 2, 4):
        assert feed(make("top_k_accuracy", (5,), True, k=k), y, logits, sizes).result() == \
            pytest.approx(skm.top_k_accuracy_score(y, probs, k=k, labels=range(5)), abs=1e-12)
    assert feed(make("perplexity", (5,), True), y, logits, sizes).result() == \
        pytest.approx(math.exp(skm.log_loss(y, probs, labels=range(5))), rel=1e-6)


@pytest.mark.parametrize("sizes", SIZES_37)
def test_binary_against_sklearn(sizes):
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(37, 1, generator=gen)
    y = (torch.rand(37, generator=gen) < 0.4).float()
    pred = (logits[:, 0] > 0).long().numpy()
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):
        assert feed(make(name, (1,), True), y, logits, sizes).result() == \
            pytest.approx(fn(y.long(), pred, zero_division=0), abs=1e-12)
    # rounded scores make ties, which the exact AUC counts as halves like scikit-learn
    rounded = torch.round(torch.sigmoid(logits) * 10) / 10
    assert feed(make("auc", (1,)), y, rounded, sizes).result() == \
        pytest.approx(skm.roc_auc_score(y, rounded[:, 0]), abs=1e-12)
    assert feed(make("auc", (1,), True), y, logits, sizes).result() == \
        pytest.approx(skm.roc_auc_score(y, logits[:, 0]), abs=1e-12)
    assert feed(make("binary_accuracy", (1,), True), y, logits, sizes).result() == \
        pytest.approx(skm.accuracy_score(y.long(), pred), abs=1e-15)


@pytest.mark.parametrize("sizes", SIZES_37)
def test_regression_against_sklearn(sizes):
    gen = torch.Generator().manual_seed(5)
    y = torch.randn(37, 3, generator=gen) * 4 + 50
    p = y + torch.randn(37, 3, generator=gen)
    yn, pn = y.double().numpy(), p.double().numpy()
    cases = {"mean_absolute_error": skm.mean_absolute_error(yn, pn),
             "mean_squared_error": skm.mean_squared_error(yn, pn),
             "root_mean_squared_error": math.sqrt(skm.mean_squared_error(yn, pn)),
             "r2": skm.r2_score(yn, pn)}
    for name, expected in cases.items():
        assert feed(make(name, (3,)), y, p, sizes).result() == pytest.approx(expected, rel=1e-9)


def test_r2_of_a_constant_target_column_follows_sklearn():
    y = np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]])
    for p in (y.copy(), y + [[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]]):
        got = feed(make("r2", (2,)), torch.tensor(y), torch.tensor(p), (2, 1)).result()
        assert got == pytest.approx(skm.r2_score(y, p), abs=1e-12)


# ---- accuracy resolution keeps working with options ------------------------------------------

def test_named_accuracy_keeps_its_key_and_state_survives_a_fresh_copy():
    from trainctl.spec.kinds.metrics import MetricPlan, metric_kinds

    plan = MetricPlan(0, metric_kinds.get("top_k_accuracy"),
                      metric_kinds.get("top_k_accuracy").Config(k=2, name="top2"))
    m = build_metric(plan, "sparse_categorical_crossentropy", False, (3,))
    feed(m, Y3, P3, (10,))
    assert m.results() == {"top2": 1.0}
    fresh = m.fresh()
    assert fresh.config.k == 2 and fresh.name == "top2" and fresh.count == 0
    acc = build_metric(MetricPlan(0, metric_kinds.get("accuracy"),
                                  metric_kinds.get("accuracy").Config(name="acc")),
                       "binary_crossentropy", True, (1,))
    assert acc.registered_name == "binary_accuracy" and acc.name == "acc"


@pytest.mark.parametrize("name, options, shape", [
    ("f1", {"average": "per_class"}, (5,)), ("auc", {}, (5,)), ("r2", {}, (5,)),
    ("perplexity", {}, (5,)), ("top_k_accuracy", {"k": 2}, (5,)), ("root_mean_squared_error", {}, (5,))])
def test_state_survives_a_checkpoint_mid_epoch(name, options, shape):
    """A checkpoint keeps a metric's state as JSON (trainctl.train.state); restored, the
    metric goes on to the result of an uninterrupted one."""
    from trainctl.train.state import load_metric_state, metric_state

    y, logits = _random(7, 37, 5)
    if name in ("r2", "root_mean_squared_error"):
        y = logits.flip(0) + 0.5
    whole = feed(make(name, shape, True, **options), y, logits, (16, 16, 5))
    first = feed(make(name, shape, True, **options), y[:16], logits[:16], (16,))
    saved = json.loads(json.dumps(metric_state(first)))
    resumed = make(name, shape, True, **options)
    load_metric_state(resumed, saved, torch.device("cpu"))
    feed(resumed, y[16:], logits[16:], (16, 5))
    assert resumed.results() == whole.results() and resumed.count == 37
