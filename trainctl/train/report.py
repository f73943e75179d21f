"""Per-class precision, recall, F1 and the confusion matrix of a classifier on labelled
data (``trainctl eval``), as scikit-learn's ``classification_report`` and
``confusion_matrix`` define them (rows: true class, columns: predicted class; a ratio
with a zero denominator is 0, sklearn's ``zero_division=0``)."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from trainctl.train.trained import Trained


def labelled_predictions(trained: Trained, batches: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(true class, predicted class)``, int64 [N] each, over ``batches`` of
    preprocessed ``(features, labels)``; labels are class indices, one-hot rows or (binary)
    0/1 values. Predicted: the most probable class (binary: probability above 1/2)."""
    import torch

    from trainctl.autodiff import Tensor, no_grad

    true, pred = [], []
    for x, y in batches:
        with no_grad():
            out = trained.model(Tensor(torch.as_tensor(np.asarray(x)).to(trained.device)),
                                training=False).data.detach().to("cpu")
        pred.append(trained.probabilities(out).argmax(dim=1).numpy())
        y = np.asarray(y)
        true.append(y.argmax(axis=-1) if y.ndim == 2 and y.shape[1] > 1 else
                    np.rint(y.reshape(len(y))).astype(np.int64))
    return np.concatenate(true).astype(np.int64), np.concatenate(pred).astype(np.int64)


def class_report(true: np.ndarray, pred: np.ndarray, class_names: Iterable[str]) -> dict[str, Any]:
    """``{"classes": [...], "per_class": [{"class", "precision", "recall", "f1",
    "support"}], "macro_avg": {...}, "weighted_avg": {...}, "confusion_matrix": [[...]]}``
    for class indices ``true`` and ``pred`` [N] over the K ``class_names``."""
    names = list(class_names)
    k = len(names)
    matrix = np.bincount(true * k + pred, minlength=k * k).reshape(k, k)
    tp = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(k), where=both > 0)
    rows = [{"class": n, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for n, p, r, f, s in zip(names, precision, recall, f1, support)]
    weights = support / support.sum() if support.sum() else np.zeros(k)
    average = lambda w: {"precision": float(precision @ w), "recall": float(recall @ w),  # noqa: E731
                         "f1": float(f1 @ w), "support": int(support.sum())}
    return {"classes": names, "per_class": rows, "macro_avg": average(np.full(k, 1 / k)),
            "weighted_avg": average(weights), "confusion_matrix": matrix.tolist()}
