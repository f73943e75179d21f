"""Predictions of a trained model on raw rows (``trainctl predict``), batched."""

from __future__ import annotations

from typing import Callable

import numpy as np

from trainctl.data.inputs import Rows
from trainctl.errors import DataError
from trainctl.io.predictions import Predictions
from trainctl.train.trained import Trained


def row_check(trained: Trained) -> Callable[[tuple[int, ...]], str | None]:
    """For :class:`~trainctl.data.inputs.InputFormat.check`: given one raw row's shape,
    None when the checkpoint's preprocessing of a zero row of that shape gives the model's
    input shape, else why not (``"shape [10, 10], the model takes [8, 8]"``; with a
    shape-changing preprocessing, the shape after it too). Results are cached by shape."""
    want = tuple(trained.model.input_shape)
    cache: dict[tuple[int, ...], str | None] = {}

    def after(shape: tuple[int, ...]) -> tuple[int, ...] | None:
        try:
            with np.errstate(all="ignore"):
                return tuple(np.asarray(trained.preprocessing(np.zeros((1, *shape), np.float32))).shape[1:])
        except (ValueError, TypeError, IndexError, DataError):
            return None

    def check(shape: tuple[int, ...]) -> str | None:
        shape = tuple(int(n) for n in shape)
        if shape not in cache:
            got = after(shape)
            if got == want:
                cache[shape] = None
            elif after(want) == want:      # raw rows have the model's input shape
                cache[shape] = f"shape {list(shape)}, the model takes {list(want)}"
            else:
                cache[shape] = (f"shape {list(shape)}, which the preprocessing "
                                f"({trained.preprocessing.describe()}) does not turn into the "
                                f"model's input shape {list(want)}")
        return cache[shape]

    return check


def predict_rows(trained: Trained, rows: Rows, batch_size: int = 256, top_k: int = 1,
                 on_batch: Callable[[int], None] | None = None) -> Predictions:
    """:class:`Predictions` of ``trained`` for ``rows`` (raw features: the checkpoint's
    preprocessing is applied), ``batch_size`` rows at a time; ``on_batch(n)`` is called
    after each batch with its row count (for a progress bar).

    Classifiers get class probabilities (softmax of logits; binary: [1 - p, p]) and the
    ``top_k`` classes; regression the output values. Raises DataError when preprocessed
    rows do not have the model's input shape.
    """
    if batch_size < 1:
        raise DataError(f"the batch size must be at least 1, got {batch_size}")
    want = tuple(trained.model.input_shape)
    try:
        got = tuple(trained.preprocessing(rows.x[:1]).shape[1:])
    except ValueError as exc:  # e.g. statistics of another shape than the rows
        raise DataError(f"{rows.ids[0]}: rows of shape {list(rows.x.shape[1:])} do not fit the "
                        f"model's preprocessing ({trained.preprocessing.describe()}): {exc}") from None
    if got != want:
        raise DataError(f"{rows.ids[0]}: rows of shape {list(rows.x.shape[1:])} (after preprocessing "
                        f"{list(got)}); the model takes {list(want)}")
    outputs = []
    for start in range(0, len(rows.x), batch_size):
        batch = rows.x[start:start + batch_size]
        outputs.append(trained.predict(batch))
        if on_batch is not None:
            on_batch(len(batch))
    import torch

    out = torch.cat(outputs)
    probabilities = trained.probabilities(out)
    if probabilities is None:
        return Predictions(rows.ids, values=out.numpy().astype(np.float32))
    names = trained.class_names or tuple(str(i) for i in range(probabilities.shape[1]))
    if trained.task == "binary" and len(names) != 2:
        names = ("0", "1")
    return Predictions(rows.ids, probabilities=probabilities.numpy(), class_names=tuple(names),
                       top_k=top_k)
