"""Losses by Keras name. Each returns the loss PER SAMPLE (shape [batch]); the training
loop averages over samples, so a short last batch is weighted correctly.

Labels: integer class ids [batch] for the classification losses (categorical_crossentropy
one-hot encodes them itself when given ids), values for regression.
"""

from __future__ import annotations

import torch

from trainctl.autodiff import ops
from trainctl.autodiff.ops.core import fmt_shape
from trainctl.autodiff.tensor import Tensor
from trainctl.errors import ShapeError
from trainctl.registry import Registry
from trainctl.spec import Config, kinds

losses: Registry[type["Loss"]] = Registry("loss")

EPSILON = 1e-7  # Keras' clipping of probabilities when from_logits is false


class Loss(kinds.LossKind):
    """Base class: ``loss(y_true, y_pred) -> per-sample loss [batch]``.

    A loss also derives from its kind in :mod:`trainctl.spec.kinds.losses` (its ``Config``,
    ``expected_output`` and what labels it needs, free of torch) and registers under the
    kind's name.
    """

    def __init__(self, config: Config | None = None, **options):
        self.config = config if config is not None else self.Config(**options)

    def __call__(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"type": self.registered_name, **self.config.model_dump()}


def _log_probs(y_pred: Tensor, from_logits: bool) -> Tensor:
    if from_logits:
        return ops.log_softmax(y_pred, axis=-1)
    probs = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    return ops.log(ops.minimum(ops.maximum(probs, EPSILON), 1.0 - EPSILON))


@losses.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(Loss, kinds.SparseCategoricalCrossentropy):
    """-log p[label] for integer labels [batch] and scores [batch, classes]; for labels
    per position [batch, T...] and scores [batch, T..., classes] (a language model), the
    mean over the positions, so each sample's loss is its mean per-token cross-entropy.

    With ``from_logits`` the log-probabilities come from a stable log_softmax (finite for
    logits of ±1e8); otherwise probabilities are clipped to [1e-7, 1 - 1e-7] (Keras).
    """

    def __call__(self, y_true, y_pred):
        if y_pred.ndim < 2 or tuple(y_true.shape) != tuple(y_pred.shape[:-1]):
            raise ShapeError(f"sparse_categorical_crossentropy: labels {fmt_shape(y_true.shape)} "
                             f"do not fit predictions {fmt_shape(y_pred.shape)}")
        batch, classes = y_pred.shape[0], y_pred.shape[-1]
        flat = y_pred if y_pred.ndim == 2 else ops.reshape(y_pred, (-1, classes))
        logp = _log_probs(flat, self.config.from_logits)
        picked = -ops.reshape(ops.take_along_axis(logp, ops.reshape(y_true, (-1, 1)), axis=1),
                              (-1,))
        return picked if y_pred.ndim == 2 else ops.mean(ops.reshape(picked, (batch, -1)), axis=1)


@losses.register("categorical_crossentropy")
class CategoricalCrossentropy(Loss, kinds.CategoricalCrossentropy):
    """-sum(y · log p) over classes; integer labels [batch] are one-hot encoded first."""

    def __call__(self, y_true, y_pred):
        given = y_true.shape  # the message names the labels as given, not one-hot encoded
        if y_true.ndim == 1 and not y_true.dtype.is_floating_point:
            y_true = one_hot(y_true, y_pred.shape[-1], y_pred.dtype)
        if y_true.shape != y_pred.shape:
            raise ShapeError(f"categorical_crossentropy: labels {fmt_shape(given)} do not "
                             f"fit predictions {fmt_shape(y_pred.shape)}")
        return -ops.sum(y_true * _log_probs(y_pred, self.config.from_logits), axis=-1)


@losses.register("binary_crossentropy")
class BinaryCrossentropy(Loss, kinds.BinaryCrossentropy):
    """-[z log p + (1 - z) log(1 - p)], averaged over the last axis.

    ``from_logits`` uses the fused, exact sigmoid cross-entropy; otherwise p is clipped to
    [1e-7, 1 - 1e-7] (Keras). Labels [batch] fit predictions [batch, 1].
    """

    def __call__(self, y_true, y_pred):
        y_true = _labels_like(y_true, y_pred, "binary_crossentropy")
        if self.config.from_logits:
            per = ops.sigmoid_cross_entropy_with_logits(y_pred, y_true)
        else:
            p = ops.minimum(ops.maximum(y_pred, EPSILON), 1.0 - EPSILON)
            per = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(per, axis=-1)


@losses.register("mean_squared_error")
class MeanSquaredError(Loss, kinds.MeanSquaredError):
    """mean((y - ŷ)²) over the last axis. Labels [batch] fit predictions [batch, 1]."""

    def __call__(self, y_true, y_pred):
        y_true = _labels_like(y_true, y_pred, "mean_squared_error")
        diff = y_pred - y_true
        return ops.mean(diff * diff, axis=-1)


def _labels_like(y_true: Tensor, y_pred: Tensor, name: str) -> Tensor:
    given = y_true.shape  # the message names the labels as given, not reshaped
    if not y_true.dtype.is_floating_point or y_true.dtype != y_pred.dtype:
        y_true = ops.cast(y_true, y_pred.dtype)
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
        y_true = ops.reshape(y_true, y_true.shape + (1,))
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"{name}: labels {fmt_shape(given)} do not fit predictions "
                         f"{fmt_shape(y_pred.shape)}")
    return y_true


def one_hot(labels: Tensor, depth: int, dtype: torch.dtype) -> Tensor:
    """Integer labels [n] → one-hot rows [n, depth] (a constant: labels have no gradient)."""
    return Tensor(torch.nn.functional.one_hot(labels.data.long(), depth).to(dtype))
