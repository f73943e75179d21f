"""Spec sources that read files: csv, npz, npy, idx, image_folder, text, jsonl.

Paths are relative to ``base_dir`` (the spec file's folder when a spec is loaded) and may
be globs (``data/*.csv``) where a source reads several files; the files are read in
sorted order and concatenated. Each source returns a :class:`SourceData`; labels are
class indices (classification) or float targets (regression) by ``task``:

- ``auto``: text labels are class names (sorted, unless ``classes`` gives the order),
  integer labels are class indices 0..K-1 (K = largest + 1), float labels are targets;
- ``classification`` / ``regression`` force one reading (DataError when impossible).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from trainctl.data.lazy import numpy as np
from pydantic import Field

from trainctl import spec
from trainctl.data.csv_reader import read_csv, pick
from trainctl.data.readers import (expand, read_idx, read_image_folder, read_jsonl, read_lines,
                                   read_npy, read_npz)
from trainctl.data.sources import SourceData, sources
from trainctl.errors import DataError

Task = Literal["auto", "classification", "regression"]


class FileSource:
    """A source reading files named by the Config fields in ``PATHS``."""

    PATHS: tuple[str, ...] = ("path",)

    @classmethod
    def absolute(cls, config: spec.Config, base_dir: str | os.PathLike | None) -> spec.Config:
        """``config`` with its paths made absolute (what a run directory records)."""
        base = Path(base_dir or ".").resolve()
        updates = {name: str((base / getattr(config, name)).resolve()) for name in cls.PATHS
                   if getattr(config, name) is not None and not Path(getattr(config, name)).is_absolute()}
        return config.model_copy(update=updates)

    @classmethod
    def missing_paths(cls, config: spec.Config, base_dir: str | os.PathLike | None) -> dict[str, str]:
        """``{field: message}`` for each path that names nothing."""
        out = {}
        for name in cls.PATHS:
            value = getattr(config, name)
            if value is not None:
                try:
                    expand(value, base_dir)
                except DataError as exc:
                    out[name] = str(exc)
        return out


def encode_labels(values: np.ndarray, task: str, classes: list[str] | None,
                  where: Callable[[int], str]) -> tuple[np.ndarray, int | None, tuple[str, ...] | None]:
    """``(y, num_classes, class_names)`` from raw label ``values`` [N] (see the module doc).

    ``where(i)`` names row i (``file:line``) in messages. Raises DataError for text labels
    in a regression, a label missing from ``classes``, or a negative or fractional class.
    """
    text = values.dtype.kind in "US"
    if task == "regression" or (task == "auto" and values.dtype.kind == "f" and not text):
        if text:
            raise DataError(f"{where(0)}: text labels ({values[0]!r}) cannot be regression targets")
        return values.astype(np.float32), None, None
    if text:
        names = list(classes) if classes else sorted(set(values.tolist()))
        index = {name: i for i, name in enumerate(names)}
        y = np.empty(len(values), dtype=np.int64)
        for i, value in enumerate(values.tolist()):
            if value not in index:
                raise DataError(f"{where(i)}: label {value!r} is not one of the classes {names}")
            y[i] = index[value]
        return y, len(names), tuple(names)
    numbers = values.astype(np.float64)
    bad = np.flatnonzero((numbers < 0) | (numbers != np.round(numbers)))
    if bad.size:
        raise DataError(f"{where(int(bad[0]))}: class label {values[bad[0]].item()!r} is not an integer "
                        "class index >= 0 (use task: regression for targets)")
    y = numbers.astype(np.int64)
    k = len(classes) if classes else int(y.max()) + 1 if y.size else 0
    if y.size and y.max() >= k:
        i = int(np.argmax(y))
        raise DataError(f"{where(i)}: class label {y[i]} is outside the {k} classes {classes}")
    return y, k, tuple(classes) if classes else tuple(str(c) for c in range(k))


class LabelOptions(spec.Config):
    task: Task = "auto"
    classes: Optional[list[str]] = None


@sources.register("csv")
class Csv(FileSource):
    """CSV file(s) with a header: ``columns`` (default: all but the label) as float32
    features [N, F], or one text column as str [N]; ``label`` names the label column.

    ``missing`` says what to do with missing cells (empty, NA, N/A, NaN, null, ?):
    ``error`` (DataError naming file, line and column), ``drop`` the row, or fill with the
    column's ``mean`` over the file or ``zero``.
    """

    class Config(LabelOptions):
        path: str
        label: str
        columns: Optional[list[str]] = Field(None, min_length=1)
        missing: Literal["error", "drop", "mean", "zero"] = "error"
        delimiter: str = Field(",", min_length=1, max_length=1)

    @classmethod
    def load(cls, config: "Csv.Config", seed: int, base_dir: Any = None) -> SourceData:
        paths = expand(config.path, base_dir)
        table = read_csv(paths, delimiter=config.delimiter)
        label = pick(table, [config.label], f"{paths[0]}:1: csv label")[0]
        names = config.columns or [n for n in table if n != config.label]
        features = pick(table, names, f"{paths[0]}:1: csv columns")
        keep = np.ones(len(label.values), dtype=bool)
        for column in [label, *features]:
            if column.missing.any():
                if config.missing == "drop":
                    keep &= ~column.missing
                elif config.missing == "error" or column is label:
                    row = int(np.argmax(column.missing))
                    raise DataError(f"{column.where(row)}: column {column.name!r}: missing value "
                                    "(set the source's missing: to drop, mean or zero)")
        if len(features) == 1 and features[0].kind == "text":
            x = features[0].values[keep]
        else:
            for column in features:
                if column.kind == "text":
                    raise DataError(f"{column.where(0)}: column {column.name!r} holds text "
                                    f"({column.values[0]!r}); choose numeric columns with columns:")
            x = np.stack([_filled(c, config.missing) for c in features], axis=1)[keep]
        rows = np.flatnonzero(keep)
        y, k, classes = encode_labels(label.values[keep], config.task, config.classes,
                                      lambda i: label.where(int(rows[i])))
        return SourceData(x, y, num_classes=k, feature_names=tuple(names), class_names=classes,
                          description=f"csv: {', '.join(str(p) for p in paths)}")


def _filled(column, policy: str) -> np.ndarray:
    values = column.values.astype(np.float64)
    if column.missing.any() and policy in ("mean", "zero"):
        fill = np.nanmean(values) if policy == "mean" and (~column.missing).any() else 0.0
        values = np.where(column.missing, fill, values)
    return values


def _concat(arrays: list[np.ndarray], what: str) -> np.ndarray:
    try:
        return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    except ValueError as exc:
        raise DataError(f"{what}: the files' arrays do not fit together: {exc}") from None


def _array_where(path: str) -> Callable[[int], str]:
    return lambda i: f"{path}: element {i}"


@sources.register("npz")
class Npz(FileSource):
    """Numpy ``.npz`` archive(s) holding features under key ``x`` and labels under ``y``
    (names configurable), first axes of equal length N."""

    class Config(LabelOptions):
        path: str
        x: str = "x"
        y: str = "y"

    @classmethod
    def load(cls, config: "Npz.Config", seed: int, base_dir: Any = None) -> SourceData:
        xs, ys = [], []
        for path in expand(config.path, base_dir):
            arrays = read_npz(path)
            for key in (config.x, config.y):
                if key not in arrays:
                    raise DataError(f"{path}: no array {key!r}; it holds {sorted(arrays)}")
            xs.append(arrays[config.x])
            ys.append(arrays[config.y])
        x, y = _concat(xs, "npz"), _concat(ys, "npz")
        labels, k, classes = encode_labels(y, config.task, config.classes, _array_where(config.path))
        return SourceData(x, labels, num_classes=k, class_names=classes,
                          description=f"npz: {config.path}")


@sources.register("npy")
class Npy(FileSource):
    """Two ``.npy`` files: ``features`` [N, ...] and ``labels`` [N] (memory-mapped when
    large)."""

    PATHS = ("features", "labels")

    class Config(LabelOptions):
        features: str
        labels: str

    @classmethod
    def load(cls, config: "Npy.Config", seed: int, base_dir: Any = None) -> SourceData:
        x = _concat([read_npy(p) for p in expand(config.features, base_dir)], "npy")
        y = _concat([read_npy(p) for p in expand(config.labels, base_dir)], "npy")
        labels, k, classes = encode_labels(np.asarray(y), config.task, config.classes,
                                           _array_where(config.labels))
        return SourceData(x, labels, num_classes=k, class_names=classes,
                          description=f"npy: {config.features}, {config.labels}")


@sources.register("idx")
class Idx(FileSource):
    """IDX files (MNIST's format, gzip or not): ``images`` [N, ...] and ``labels`` [N]."""

    PATHS = ("images", "labels")

    class Config(LabelOptions):
        images: str
        labels: str

    @classmethod
    def load(cls, config: "Idx.Config", seed: int, base_dir: Any = None) -> SourceData:
        x = _concat([read_idx(p) for p in expand(config.images, base_dir)], "idx")
        y = _concat([read_idx(p) for p in expand(config.labels, base_dir)], "idx")
        if y.ndim != 1:
            raise DataError(f"{config.labels}: labels must be one number per sample, got shape {list(y.shape)}")
        labels, k, classes = encode_labels(y, config.task, config.classes, _array_where(config.labels))
        return SourceData(x, labels, num_classes=k, class_names=classes,
                          description=f"idx: {config.images}, {config.labels}")


@sources.register("image_folder")
class ImageFolder(FileSource):
    """Images in ``path/<class>/*.png|jpg|...`` (Pillow): x float32 [N, H, W] (grayscale)
    or [N, H, W, 3] (rgb), pixel values 0..255; ``size: [height, width]`` resizes."""

    class Config(spec.Config):
        path: str
        size: Optional[list[int]] = Field(None, min_length=2, max_length=2)
        color: Literal["grayscale", "rgb"] = "grayscale"

    @classmethod
    def load(cls, config: "ImageFolder.Config", seed: int, base_dir: Any = None) -> SourceData:
        root = expand(config.path, base_dir)[0]
        size = tuple(config.size) if config.size else None
        if size is not None and min(size) < 1:
            raise DataError(f"image_folder: size must be positive, got {list(size)}")
        x, y, classes, _ = read_image_folder(root, size, config.color)
        return SourceData(x, y, num_classes=len(classes), class_names=classes,
                          description=f"image folder: {root} ({config.color})")


@sources.register("text")
class Text(FileSource):
    """Text files, one sample per non-empty line: x str [N]. The label is the name of
    each file's folder (``label: folder``) or the file's name without suffix (``file``);
    classes are those names, sorted."""

    class Config(spec.Config):
        path: str
        label: Literal["folder", "file"] = "folder"

    @classmethod
    def load(cls, config: "Text.Config", seed: int, base_dir: Any = None) -> SourceData:
        paths = expand(config.path, base_dir)
        rows = list(read_lines(paths, skip_empty=True))
        if not rows:
            raise DataError(f"{config.path}: the files hold no text")
        names = [p.parent.name if config.label == "folder" else p.stem for p, _, _ in rows]
        y, k, classes = encode_labels(np.array(names), "classification", None,
                                      lambda i: f"{rows[i][0]}:{rows[i][1]}")
        return SourceData(np.array([t for _, _, t in rows]), y, num_classes=k, class_names=classes,
                          description=f"text: {config.path}")


@sources.register("jsonl")
class JsonLines(FileSource):
    """JSON Lines file(s), one object per line: ``features`` lists the keys holding
    numbers or lists of numbers (concatenated into float32 [N, F]), or one key holding
    text (str [N]); ``label`` the key of the label."""

    class Config(LabelOptions):
        path: str
        features: list[str] = Field(min_length=1)
        label: str

    @classmethod
    def load(cls, config: "JsonLines.Config", seed: int, base_dir: Any = None) -> SourceData:
        rows = list(read_jsonl(expand(config.path, base_dir)))
        if not rows:
            raise DataError(f"{config.path}: no records")
        xs, labels = [], []
        text = len(config.features) == 1 and isinstance(rows[0][2].get(config.features[0]), str)
        for path, line, record in rows:
            for key in (*config.features, config.label):
                if key not in record:
                    raise DataError(f"{path}:{line}: the record has no key {key!r}")
            labels.append(record[config.label])
            if text:
                xs.append(str(record[config.features[0]]))
                continue
            try:
                xs.append(np.concatenate([np.asarray(record[k], dtype=np.float64).ravel()
                                          for k in config.features]))
            except (TypeError, ValueError):
                raise DataError(f"{path}:{line}: features {config.features} must hold numbers "
                                "or lists of numbers") from None
            if len(xs[-1]) != len(xs[0]):
                raise DataError(f"{path}:{line}: {len(xs[-1])} feature values, the first record "
                                f"has {len(xs[0])}")
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in labels):
            raise DataError(f"{config.path}: labels must be strings or numbers")
        raw = np.array([str(v) for v in labels]) if any(isinstance(v, str) for v in labels) \
            else np.array(labels)
        y, k, classes = encode_labels(raw, config.task, config.classes,
                                      lambda i: f"{rows[i][0]}:{rows[i][1]}")
        return SourceData(np.array(xs) if text else np.stack(xs), y, num_classes=k,
                          feature_names=tuple(config.features), class_names=classes,
                          description=f"jsonl: {config.path}")
