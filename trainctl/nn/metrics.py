"""Metrics that accumulate on the device (no host sync per batch) and are read per epoch.

Each metric is registered under the name of its kind (``trainctl.spec.kinds.metrics``,
which holds its options and the rules checked before training) and derives from it.
Every metric is streaming and exact over batches of any sizes: it keeps sums, counts or a
confusion matrix (the AUC keeps every score), never a mean of batch means, so the result
over uneven batches equals the result over the whole set at once.

Conventions (shapes without the batch axis B): predictions ``y_pred`` [B, *output];
labels ``y_true`` [B] integer class indices, [B, classes] one-hot, or [B, *output] values.
A one-unit output [1] is a binary classifier: probabilities thresholded at 0.5, logits
(``from_logits``) at 0. ``accuracy`` resolves, as in Keras, to binary, sparse categorical
or categorical accuracy from the loss and the output shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from trainctl.autodiff.tensor import Tensor
from trainctl.registry import Registry
from trainctl.spec.kinds import metrics as kinds
from trainctl.spec.kinds.metrics import MetricConfig, MetricPlan

metrics: Registry[type["Metric"]] = Registry("metric")


def _data(t: Any) -> torch.Tensor:
    return t.data if isinstance(t, Tensor) else t


class Metric(kinds.MetricKind):
    """A streaming metric: ``update(y_true, y_pred)`` per batch, ``results()`` (record key →
    float; NaN before any update), ``reset()``.

    ``config`` holds the options (the kind's Config), ``output_shape`` the model's output
    shape without the batch axis (it fixes the number of classes), ``count`` the samples
    seen. The state is tensors and numbers only, so a checkpoint can keep it.
    """

    registered_name: ClassVar[str]

    def __init__(self, config: MetricConfig | None = None, *, from_logits: bool = False,
                 output_shape: tuple[int, ...] | None = None, name: str | None = None):
        self.config = config if config is not None else self.Config()
        self.from_logits = from_logits
        self.output_shape = tuple(output_shape) if output_shape is not None else None
        self.name = name or self.key(self.config)
        self.count = 0
        self.reset()

    # -- the interface ----------------------------------------------------------------
    def update(self, y_true: Tensor | torch.Tensor, y_pred: Tensor | torch.Tensor) -> None:
        """Add a batch (Tensors or torch tensors; nothing is read back from the device)."""
        y_true, y_pred = _data(y_true), _data(y_pred).detach()
        self._update(y_true, y_pred)
        self.count += int(y_pred.shape[0])

    def results(self) -> dict[str, float]:
        """Every value this metric records, by key (one key but for ``per_class``)."""
        return {self.name: self.result()}

    def result(self) -> float:
        """The value so far (NaN before any update). Syncs with the device once."""
        raise NotImplementedError

    def reset(self) -> None:
        self.count = 0

    def record_keys(self) -> list[str]:
        """The keys :meth:`results` returns."""
        return [self.name]

    def fresh(self) -> "Metric":
        """A metric of the same type and options with empty state."""
        return type(self)(self.config, from_logits=self.from_logits,
                          output_shape=self.output_shape, name=self.name)

    def _update(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> None:
        raise NotImplementedError


class MeanMetric(Metric):
    """Mean of a per-sample value over every sample seen (float64 sum on the device)."""

    def reset(self) -> None:
        super().reset()
        self.total: torch.Tensor | None = None

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """Per-sample values [batch]."""
        raise NotImplementedError

    def _update(self, y_true, y_pred):
        v = self.values(y_true, y_pred).to(torch.float64).sum()
        self.total = v if self.total is None else self.total + v

    def result(self) -> float:
        if self.total is None or self.count == 0:
            return float("nan")
        return float(self.total.item()) / self.count


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    """[B, ...] → [B], the mean over each sample's values."""
    return v.reshape(v.shape[0], -1).to(torch.float64).mean(dim=1)


def class_labels(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Integer class labels from integer labels or one-hot labels of the output's shape."""
    if y_true.dim() == y_pred.dim() and y_true.shape[-1] == y_pred.shape[-1] and y_pred.shape[-1] > 1:
        return y_true.argmax(dim=-1)
    return y_true.reshape(y_pred.shape[:-1]).long()


# ---- accuracy ---------------------------------------------------------------------------

@metrics.register("binary_accuracy")
class BinaryAccuracy(MeanMetric, kinds.BinaryAccuracy):
    """Share of labels on the prediction's side of 0.5 (of 0 for logits); for several
    units (multi-label), the share per sample, averaged over samples."""

    def values(self, y_true, y_pred):
        thresh = 0.0 if self.from_logits else 0.5
        pred = (y_pred > thresh).reshape(y_pred.shape[0], -1)
        return (pred == y_true.reshape(y_pred.shape[0], -1).bool()).double().mean(dim=1)


@metrics.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(MeanMetric, kinds.SparseCategoricalAccuracy):
    """Share of samples whose arg-max class equals the integer label (per token, averaged
    per sample, for outputs [T, classes])."""

    def values(self, y_true, y_pred):
        return _per_sample(y_pred.argmax(dim=-1) == y_true.reshape(y_pred.shape[:-1]).long())


@metrics.register("categorical_accuracy")
class CategoricalAccuracy(MeanMetric, kinds.CategoricalAccuracy):
    """Arg-max of prediction equals arg-max of a one-hot label (or the integer label)."""

    def values(self, y_true, y_pred):
        return _per_sample(y_pred.argmax(dim=-1) == class_labels(y_true, y_pred))


@metrics.register("top_k_accuracy")
class TopKAccuracy(MeanMetric, kinds.TopKAccuracy):
    """Share of labels whose class has fewer than ``k`` classes scoring strictly higher
    (``tf.math.in_top_k``'s rule: classes tied at the k-th place all count as in the top k;
    scikit-learn's ``top_k_accuracy_score`` agrees when there are no ties)."""

    def values(self, y_true, y_pred):
        labels = class_labels(y_true, y_pred)
        own = y_pred.gather(-1, labels.unsqueeze(-1))
        higher = (y_pred > own).sum(dim=-1)
        return _per_sample(higher < self.config.k)


@metrics.register("accuracy")
class Accuracy(Metric, kinds.Accuracy):
    """The name only: :func:`build_metric` resolves it to one of the accuracies above."""


# ---- regression ---------------------------------------------------------------------------

def _diff(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    return y_pred.to(torch.float64) - y_true.reshape(y_pred.shape).to(torch.float64)


@metrics.register("mean_absolute_error")
class MeanAbsoluteError(MeanMetric, kinds.MeanAbsoluteError):
    """mean |y − ŷ| per sample, averaged over samples."""

    def values(self, y_true, y_pred):
        return _per_sample(_diff(y_true, y_pred).abs())


@metrics.register("mean_squared_error")
class MeanSquaredErrorMetric(MeanMetric, kinds.MeanSquaredError):
    """mean (y − ŷ)² per sample, averaged over samples."""

    def values(self, y_true, y_pred):
        return _per_sample(_diff(y_true, y_pred) ** 2)


@metrics.register("root_mean_squared_error")
class RootMeanSquaredError(MeanSquaredErrorMetric, kinds.RootMeanSquaredError):
    """sqrt of mean_squared_error over everything seen (not a mean of batch roots)."""

    def result(self):
        return super().result() ** 0.5


@metrics.register("r2")
class R2(Metric, kinds.R2):
    """1 − SSE / SST per output column, averaged uniformly over columns; SST from a running
    mean and sum of squared deviations merged per batch (Chan, Golub & LeVeque 1979), so
    large target means lose no precision. A constant target column scores 1 if predicted
    exactly, else 0 (scikit-learn's ``r2_score``, ``force_finite=True``)."""

    def reset(self):
        super().reset()
        self.mean: torch.Tensor | None = None  # float64 [D]
        self.m2: torch.Tensor | None = None
        self.sse: torch.Tensor | None = None

    def _update(self, y_true, y_pred):
        d = _diff(y_true, y_pred).reshape(y_pred.shape[0], -1)
        y = y_true.reshape(y_pred.shape).to(torch.float64).reshape(y_pred.shape[0], -1)
        nb, na = y.shape[0], self.count
        mean_b = y.mean(dim=0)
        m2_b = ((y - mean_b) ** 2).sum(dim=0)
        sse_b = (d * d).sum(dim=0)
        if self.mean is None:
            self.mean, self.m2, self.sse = mean_b, m2_b, sse_b
            return
        n = na + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta * delta * (na * nb / n)
        self.sse = self.sse + sse_b

    def result(self):
        if self.mean is None:
            return float("nan")
        sst, sse = self.m2.cpu(), self.sse.cpu()
        safe = torch.where(sst > 0, sst, torch.ones_like(sst))
        r2 = torch.where(sst > 0, 1 - sse / safe, (sse == 0).to(torch.float64))
        return float(r2.mean())


# ---- resolving a spec entry --------------------------------------------------------------

def build_metric(entry: str | MetricPlan, loss_name: str, from_logits: bool,
                 output_shape: tuple) -> Metric:
    """The metric object for a spec entry (a name, or a validated :class:`MetricPlan`),
    resolving ``accuracy`` as Keras does (binary for ``binary_crossentropy`` or an output
    of [1], categorical for ``categorical_crossentropy``, sparse otherwise).

    Raises UnknownNameError for an unknown name.
    """
    if isinstance(entry, str):
        cls, config = metrics.get(entry), None
    else:
        cls, config = metrics.get(entry.kind.registered_name), entry.config
    config = config if config is not None else cls.Config()
    name = cls.key(config)
    if cls is Accuracy:
        cls = metrics.get(kinds.Accuracy.resolve(loss_name, tuple(output_shape)))
        config = cls.Config(name=config.name)
    return cls(config, from_logits=from_logits, output_shape=tuple(output_shape), name=name)


from trainctl.nn import metrics_classes as _classes  # noqa: E402,F401  registers the rest
