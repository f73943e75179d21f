"""Metrics that accumulate on the device (no host sync per batch) and are read per epoch.

``accuracy`` resolves, as in Keras, to binary, sparse categorical or categorical accuracy
from the loss and the output shape. Every metric is a mean over samples, so a short last
batch counts by its size.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from trainctl.autodiff.tensor import Tensor
from trainctl.registry import Registry

metrics: Registry[type["Metric"]] = Registry("metric")


class Metric:
    """Running mean of a per-sample value: ``update(y_true, y_pred)``, ``result()``, ``reset()``."""

    registered_name: ClassVar[str]

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits
        self.total: torch.Tensor | None = None
        self.count = 0

    def values(self, y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        """Per-sample values [batch] (float64 on the batch's device)."""
        raise NotImplementedError

    def update(self, y_true: Tensor, y_pred: Tensor) -> None:
        v = self.values(y_true.data, y_pred.data).to(torch.float64).sum()
        self.total = v if self.total is None else self.total + v
        self.count += int(y_pred.shape[0])

    def result(self) -> float:
        """The mean so far (NaN before any update). Syncs with the device once."""
        if self.total is None or self.count == 0:
            return float("nan")
        return float(self.total.item()) / self.count

    def reset(self) -> None:
        self.total, self.count = None, 0


@metrics.register("binary_accuracy")
class BinaryAccuracy(Metric):
    """Fraction of samples whose prediction is on the label's side of 0.5 (of 0 for logits)."""

    def values(self, y_true, y_pred):
        thresh = 0.0 if self.from_logits else 0.5
        pred = (y_pred > thresh).reshape(y_pred.shape[0], -1)
        return (pred == y_true.reshape(y_pred.shape[0], -1).bool()).double().mean(dim=1)


@metrics.register("sparse_categorical_accuracy")
class SparseCategoricalAccuracy(Metric):
    """Fraction of samples whose arg-max class equals the integer label."""

    def values(self, y_true, y_pred):
        return (y_pred.argmax(dim=-1) == y_true.long()).double()


@metrics.register("categorical_accuracy")
class CategoricalAccuracy(Metric):
    """Arg-max of prediction equals arg-max of a one-hot label (or the integer label)."""

    def values(self, y_true, y_pred):
        labels = y_true.argmax(dim=-1) if y_true.dim() == y_pred.dim() else y_true.long()
        return (y_pred.argmax(dim=-1) == labels).double()


@metrics.register("mean_absolute_error")
class MeanAbsoluteError(Metric):
    """mean |y - ŷ| per sample."""

    def values(self, y_true, y_pred):
        return (y_pred - y_true.reshape(y_pred.shape).to(y_pred.dtype)).abs().reshape(y_pred.shape[0], -1).mean(1)


@metrics.register("mean_squared_error")
class MeanSquaredErrorMetric(Metric):
    """mean (y - ŷ)² per sample."""

    def values(self, y_true, y_pred):
        d = y_pred - y_true.reshape(y_pred.shape).to(y_pred.dtype)
        return (d * d).reshape(y_pred.shape[0], -1).mean(1)


@metrics.register("accuracy")
class Accuracy(Metric):
    """Placeholder name resolved by :func:`build_metric`."""


def build_metric(name: str, loss_name: str, from_logits: bool, output_shape: tuple) -> Metric:
    """The metric object for a spec name, resolving ``accuracy`` as Keras does.

    Raises UnknownNameError for an unknown name.
    """
    cls = metrics.get(name)
    if cls is Accuracy:
        if loss_name == "binary_crossentropy" or tuple(output_shape) == (1,):
            cls = BinaryAccuracy
        elif loss_name == "categorical_crossentropy":
            cls = CategoricalAccuracy
        else:
            cls = SparseCategoricalAccuracy
    metric = cls(from_logits=from_logits)
    metric.name = name
    return metric
