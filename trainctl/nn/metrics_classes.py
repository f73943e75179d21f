"""Classification metrics beyond accuracy: precision, recall and F1 from a streamed
confusion matrix, the exact ROC AUC, and perplexity. Registered in
:data:`trainctl.nn.metrics.metrics` (see that module for the shape conventions).

Formulas follow scikit-learn's ``precision_recall_fscore_support`` and ``roc_auc_score``
(the tests use them as the oracle):

- per class c, from the confusion matrix M (rows: labels, columns: predictions):
  tp = M[c, c], precision = tp / Σ_row M[:, c], recall = tp / Σ_col M[c, :],
  F1 = 2·tp / (Σ M[:, c] + Σ M[c, :]); a 0/0 is 0 (``zero_division=0``);
- ``macro``: the unweighted mean over the classes that occur in the labels or the
  predictions (scikit-learn's default ``labels``); ``weighted``: weighted by each class's
  support; ``micro``: the same formulas on the counts summed over classes (for one label
  per sample all three equal the accuracy); ``binary``: class 1; ``per_class``: every
  class 0..C−1, absent ones 0;
- AUC: the Mann–Whitney statistic with tied scores counted 1/2 (average ranks), which
  is the exact area under the ROC curve of the scores; for C > 2 classes the one-vs-rest
  macro average over the classes that occur (scores: softmax of logits, or the
  probabilities as given).
"""

from __future__ import annotations

import math

import torch

from trainctl.nn.metrics import Metric, MeanMetric, class_labels, metrics
from trainctl.spec.kinds import metrics as kinds


def _classes(output_shape: tuple[int, ...] | None, y_pred: torch.Tensor) -> int:
    shape = output_shape if output_shape is not None else tuple(y_pred.shape[1:])
    return 2 if tuple(shape) == (1,) else int(shape[-1])


def _binary(metric: Metric, y_pred: torch.Tensor) -> bool:
    shape = metric.output_shape if metric.output_shape is not None else tuple(y_pred.shape[1:])
    return tuple(shape) == (1,)


class ConfusionMetric(Metric):
    """Keeps the confusion matrix ``matrix`` (int64 [C, C] on the device; rows: labels,
    columns: predicted classes); C = 2 for a one-unit output."""

    def reset(self):
        super().reset()
        self.matrix: torch.Tensor | None = None

    def _update(self, y_true, y_pred):
        c = _classes(self.output_shape, y_pred)
        if _binary(self, y_pred):
            pred = (y_pred > (0.0 if self.from_logits else 0.5)).long().reshape(-1)
            true = y_true.reshape(-1).long()
        else:
            pred = y_pred.argmax(dim=-1).reshape(-1)
            true = class_labels(y_true, y_pred).reshape(-1)
        counts = torch.bincount(true * c + pred, minlength=c * c).reshape(c, c)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def _average(self) -> str:
        if self.config.average is not None:
            return self.config.average
        shape = self.output_shape
        return "binary" if shape is not None and tuple(shape) == (1,) else "macro"

    def _parts(self, tp, predicted, actual):
        """(numerator, denominator) per class of this metric, float64."""
        raise NotImplementedError

    def _values(self) -> torch.Tensor | float:
        m = self.matrix.cpu().to(torch.float64)
        tp, predicted, actual = m.diagonal(), m.sum(dim=0), m.sum(dim=1)
        average = self._average()
        if average == "micro":
            num, den = self._parts(tp.sum(), predicted.sum(), actual.sum())
            return float(num / den) if den > 0 else 0.0
        num, den = self._parts(tp, predicted, actual)
        per_class = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), 0.0)
        if average == "per_class":
            return per_class
        if average == "binary":
            return float(per_class[1])
        present = (predicted + actual) > 0
        if average == "weighted":
            return float((per_class * actual).sum() / actual.sum()) if actual.sum() > 0 else 0.0
        return float(per_class[present].mean()) if present.any() else 0.0

    def result(self):
        if self.matrix is None:
            return float("nan")
        value = self._values()
        if isinstance(value, torch.Tensor):
            raise ValueError(f"{self.name} has one value per class: read results()")
        return value

    def results(self):
        if self._average_is_per_class():
            keys = self.record_keys()
            if self.matrix is None:
                return {k: float("nan") for k in keys}
            return dict(zip(keys, (float(v) for v in self._values())))
        return {self.name: self.result()}

    def _average_is_per_class(self) -> bool:
        return self.config.average == "per_class"

    def record_keys(self):
        if not self._average_is_per_class():
            return [self.name]
        classes = (self.matrix.shape[0] if self.matrix is not None else
                   _classes(self.output_shape, None) if self.output_shape is not None else 0)
        return [f"{self.name}_class_{c}" for c in range(classes)]


@metrics.register("precision")
class Precision(ConfusionMetric, kinds.Precision):
    def _parts(self, tp, predicted, actual):
        return tp, predicted


@metrics.register("recall")
class Recall(ConfusionMetric, kinds.Recall):
    def _parts(self, tp, predicted, actual):
        return tp, actual


@metrics.register("f1")
class F1(ConfusionMetric, kinds.F1):
    def _parts(self, tp, predicted, actual):
        return 2 * tp, predicted + actual


# ---- AUC -----------------------------------------------------------------------------------

def binary_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Exact ROC AUC of ``scores`` (float [N]) for the labels ``positive`` (bool [N]):
    (Σ ranks of the positives − P(P+1)/2) / (P·N), ranks averaged over ties. NaN when
    one class is missing (the AUC is undefined)."""
    n = scores.numel()
    n_pos = int(positive.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores, stable=True)
    _, inverse, counts = torch.unique_consecutive(scores[order], return_inverse=True,
                                                  return_counts=True)
    ends = counts.cumsum(0).to(torch.float64)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based average rank of each tie group
    rank_sum = float(ranks[positive[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


@metrics.register("auc")
class AUC(Metric, kinds.AUC):
    """Exact ROC AUC from every score of the epoch (see the module docstring).

    Keeps the scores (float32 [N, S], S = 1 for a one-unit output, else C) and labels
    (int64 [N]) on the device in a buffer that doubles when full: memory 4·N·S + 8·N
    bytes, and a sort of N scores per class when read.
    """

    def reset(self):
        super().reset()
        self.scores: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.filled = 0

    def _update(self, y_true, y_pred):
        if _binary(self, y_pred):
            scores = y_pred.reshape(-1, 1)
            labels = y_true.reshape(-1).long()
        else:
            scores = y_pred.reshape(-1, y_pred.shape[-1])
            labels = class_labels(y_true, y_pred).reshape(-1)
        scores = scores.to(torch.float32)
        need = self.filled + scores.shape[0]
        if self.scores is None or need > self.scores.shape[0]:
            cap = max(need, 2 * (self.scores.shape[0] if self.scores is not None else 0), 256)
            grown = torch.zeros(cap, scores.shape[1], dtype=torch.float32, device=scores.device)
            grown_labels = torch.zeros(cap, dtype=torch.int64, device=scores.device)
            if self.scores is not None:
                grown[:self.filled] = self.scores[:self.filled]
                grown_labels[:self.filled] = self.labels[:self.filled]
            self.scores, self.labels = grown, grown_labels
        self.scores[self.filled:need] = scores
        self.labels[self.filled:need] = labels
        self.filled = need

    def result(self):
        if self.scores is None or self.filled == 0:
            return float("nan")
        scores = self.scores[:self.filled].cpu().to(torch.float64)
        labels = self.labels[:self.filled].cpu()
        if scores.shape[1] == 1:
            return binary_auc(scores[:, 0], labels == 1)
        if self.from_logits:
            scores = torch.softmax(scores, dim=1)
        per_class = [binary_auc(scores[:, c], labels == c) for c in range(scores.shape[1])]
        defined = [v for v in per_class if not math.isnan(v)]
        return sum(defined) / len(defined) if defined else float("nan")


# ---- perplexity -------------------------------------------------------------------------------

@metrics.register("perplexity")
class Perplexity(MeanMetric, kinds.Perplexity):
    """exp(mean cross-entropy per label): categorical over a [.., C] output, binary over a
    one-unit output; probabilities are clipped to [1e-7, 1 − 1e-7] as the losses do. The
    mean is over labels (tokens), so outputs [T, C] give the per-token perplexity."""

    def reset(self):
        super().reset()
        self.labels_seen = 0

    def values(self, y_true, y_pred):
        p = y_pred.to(torch.float64)
        if _binary(self, y_pred):
            y = y_true.reshape(p.shape).to(torch.float64)
            if self.from_logits:  # −log σ(z) = softplus(−z), −log(1 − σ(z)) = softplus(z)
                ce = y * torch.nn.functional.softplus(-p) + (1 - y) * torch.nn.functional.softplus(p)
            else:
                q = p.clamp(1e-7, 1 - 1e-7)
                ce = -(y * q.log() + (1 - y) * (1 - q).log())
        else:
            logp = torch.log_softmax(p, dim=-1) if self.from_logits else p.clamp(1e-7, 1 - 1e-7).log()
            ce = -logp.gather(-1, class_labels(y_true, y_pred).unsqueeze(-1)).squeeze(-1)
        self.labels_seen += ce.numel()
        return ce.reshape(-1)

    def result(self):
        if self.total is None or self.labels_seen == 0:
            return float("nan")
        return math.exp(float(self.total.item()) / self.labels_seen)
