"""Raw inputs for a trained model (``trainctl predict --input``): CSV rows, NPY/NPZ arrays,
a folder of images or a single image, read into one features array with where each row
came from.

A malformed row (a CSV line with another number of fields, a cell that is not a number,
a missing cell, an image that cannot be decoded or has another size) raises DataError
naming the file and line; with ``skip_bad`` it is left out and listed in
:attr:`Rows.skipped` instead. Images are read with Pillow as the ``image_folder`` source
reads them (uint8 [H, W] grayscale or [H, W, 3] rgb, optionally resized, bilinear).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trainctl.data.lazy import numpy as np

from trainctl.data.csv_reader import MISSING_VALUES, csv_errors
from trainctl.data.readers import IMAGE_SUFFIXES, read_npy, read_npz
from trainctl.errors import DataError


@dataclass
class InputFormat:
    """How to read raw features, from the spec's source (:func:`input_format`).

    ``shape``: one raw element's feature shape when known (rows are checked against it);
    ``columns``: CSV columns to read (None: all but ``exclude``); ``npz_key``: the
    archive's features array (None: ``x``, or its only array); ``color`` and ``size``
    ([height, width] or None): how images are decoded; ``check``: given one raw row's
    shape, why the model cannot take it (None when it can; None: no check).
    """

    shape: tuple[int, ...] | None = None
    columns: list[str] | None = None
    exclude: tuple[str, ...] = ()
    npz_key: str | None = None
    color: str = "grayscale"
    size: tuple[int, int] | None = None
    check: Callable[[tuple[int, ...]], str | None] | None = None


@dataclass
class Rows:
    """Features ``x`` [N, ...] (float32, uint8 images), ``ids`` [N] (``file:line``,
    ``file[i]`` or the image's path) and the rows left out, each ``where: why``."""

    x: np.ndarray
    ids: list[str]
    skipped: list[str] = field(default_factory=list)


def input_format(source: dict | None, shape: tuple[int, ...] | None) -> InputFormat:
    """The :class:`InputFormat` a model trained on ``source`` (the spec's source entry, a
    mapping with ``type``) with raw feature shape ``shape`` expects."""
    source = source or {}
    kind = source.get("type")
    fmt = InputFormat(shape=tuple(shape) if shape else None)
    if kind == "csv":
        fmt.columns = source.get("columns")
        fmt.exclude = (source["label"],) if source.get("label") else ()
    elif kind == "npz":
        fmt.npz_key = source.get("x")
    if kind == "image_folder":
        fmt.color = source.get("color", "grayscale")
        fmt.size = tuple(source["size"]) if source.get("size") else None
    elif shape and len(shape) == 3 and shape[-1] == 3:
        fmt.color = "rgb"
    return fmt


def read_inputs(path: str | os.PathLike, fmt: InputFormat, skip_bad: bool = False) -> Rows:
    """The rows of ``path`` by its kind: a folder (its images, recursively, sorted), an
    image file, ``.csv``, ``.npy`` or ``.npz``. Raises DataError for an unknown kind, an
    unreadable file, no rows, a malformed row (unless ``skip_bad``) or rows whose shape is
    not ``fmt.shape``."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        rows = _images(files, fmt, skip_bad)
    elif not path.exists():
        raise DataError(f"{path}: no such file or directory")
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        rows = _images([path], fmt, skip_bad)
    elif path.suffix.lower() == ".csv":
        rows = _csv(path, fmt, skip_bad)
    elif path.suffix.lower() == ".npy":
        x = np.asarray(read_npy(path))
        rows = Rows(x, [f"{path}[{i}]" for i in range(len(x))])
    elif path.suffix.lower() == ".npz":
        rows = _npz(path, fmt)
    else:
        raise DataError(f"{path}: unknown input kind {path.suffix!r}; give a .csv, .npy or .npz "
                        f"file, an image ({', '.join(IMAGE_SUFFIXES)}) or a folder of images")
    if len(rows.x) == 0:
        raise DataError(f"{path}: no rows to predict" + (f" ({len(rows.skipped)} skipped)" if rows.skipped else ""))
    why = fmt.check(tuple(rows.x.shape[1:])) if fmt.check is not None else None
    if why is not None:
        raise DataError(f"{path}: rows of {why}")
    if fmt.shape is not None and tuple(rows.x.shape[1:]) != fmt.shape:
        raise DataError(f"{path}: rows of shape {list(rows.x.shape[1:])}, the model was trained "
                        f"on rows of shape {list(fmt.shape)}")
    return rows


def _bad(skip_bad: bool, skipped: list[str], where: str, why: str) -> None:
    if not skip_bad:
        raise DataError(f"{where}: {why} (pass --skip-bad to leave such rows out)")
    skipped.append(f"{where}: {why}")


def _csv(path: Path, fmt: InputFormat, skip_bad: bool) -> Rows:
    with csv_errors(path), open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [name.strip() for name in next(reader, None) or []]
        if not header:
            raise DataError(f"{path}: empty file (expected a header row)")
        names = fmt.columns or [n for n in header if n not in fmt.exclude]
        missing = [n for n in names if n not in header]
        if missing or not names:
            raise DataError(f"{path}:1: no column {', '.join(map(repr, missing))}; the header is "
                            f"{', '.join(header)}" if missing else f"{path}:1: no feature columns")
        index = [header.index(n) for n in names]
        rows = [(reader.line_num, row) for row in reader if row]
        _check_columns(path, fmt, names, index, rows)
    fast = _all_numbers(rows, index, len(header))
    if fast is not None:                  # every row well formed: converted at once
        return Rows(fast, [f"{path}:{line}" for line, _ in rows])
    values, ids, skipped = [], [], []
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) != len(header):
            _bad(skip_bad, skipped, where, f"expected {len(header)} fields, got {len(row)}")
            continue
        try:
            numbers = [_number(row[j], names[k]) for k, j in enumerate(index)]
        except ValueError as exc:
            _bad(skip_bad, skipped, where, str(exc))
            continue
        values.append(numbers)
        ids.append(where)
    x = np.asarray(values, dtype=np.float32).reshape(len(values), len(index))
    return Rows(x, ids, skipped)


def _check_columns(path: Path, fmt: InputFormat, names: list[str], index: list[int],
                   rows: list) -> None:
    """DataError when ``fmt.check`` refuses rows of ``len(names)`` features, naming the
    columns whose first cell is not a number (likely labels) when leaving them out fits."""
    why = fmt.check((len(names),)) if fmt.check is not None else None
    if why is None:
        return
    first = rows[0][1] if rows else []
    texts = [n for n, j in zip(names, index) if j < len(first) and not _is_number(first[j])]
    hint = "; give a file with the model's feature columns only"
    if texts and fmt.check((len(names) - len(texts),)) is None:
        hint = (f"; drop the label column{'s' if len(texts) > 1 else ''} "
                f"{', '.join(map(repr, texts))} (not numbers)")
    raise DataError(f"{path} has {len(names)} columns ({', '.join(names)}): {why}{hint}")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return cell.strip() in MISSING_VALUES
    return True


def _all_numbers(rows: list, index: list[int], width: int) -> np.ndarray | None:
    """The selected cells of every row as float32 [N, F] when every row has ``width``
    fields and every cell is a finite number or an infinity; None otherwise (then the
    rows are read one by one, to name the bad ones)."""
    if any(len(row) != width for _, row in rows):
        return None
    try:
        x = np.array([[row[j] for j in index] for _, row in rows], dtype=np.float64)
    except ValueError:
        return None
    if np.isnan(x).any():                 # "nan", "NaN": missing values
        return None
    return x.reshape(len(rows), len(index)).astype(np.float32)


def _number(cell: str, column: str) -> float:
    text = cell.strip()
    if text in MISSING_VALUES:
        raise ValueError(f"column {column!r}: missing value")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"column {column!r}: {text!r} is not a number") from None


def _npz(path: Path, fmt: InputFormat) -> Rows:
    arrays = read_npz(path)
    key = fmt.npz_key or ("x" if "x" in arrays or len(arrays) != 1 else next(iter(arrays)))
    if key not in arrays:
        raise DataError(f"{path}: no array {key!r}; it holds {sorted(arrays)}")
    x = np.asarray(arrays[key])
    return Rows(x, [f"{path}[{i}]" for i in range(len(x))])


def _images(files: list[Path], fmt: InputFormat, skip_bad: bool) -> Rows:
    from PIL import Image, UnidentifiedImageError

    mode = "L" if fmt.color == "grayscale" else "RGB"
    images, ids, skipped = [], [], []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert(mode)
                if fmt.size is not None:
                    image = image.resize((fmt.size[1], fmt.size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            _bad(skip_bad, skipped, str(file), f"cannot read as an image: {exc}")
            continue
        why = fmt.check(array.shape) if fmt.check is not None else None
        if why is not None:
            _bad(skip_bad, skipped, str(file), why)
            continue
        expected = images[0].shape if images else (fmt.shape if fmt.shape is not None else None)
        if expected is not None and array.shape != tuple(expected):
            _bad(skip_bad, skipped, str(file), f"image of shape {list(array.shape)}, expected "
                 f"{list(expected)}")
            continue
        images.append(array)
        ids.append(str(file))
    x = np.stack(images).astype(np.float32) if images else np.zeros((0,), np.float32)
    return Rows(x, ids, skipped)


LABELLED = {".csv": "csv", ".npz": "npz", ".jsonl": "jsonl"}


def read_labelled(path: str | os.PathLike, training_source: dict | None, task: str,
                  class_names: tuple[str, ...] | None):
    """Features and labels of a data file given on the command line (``trainctl eval
    --data``), read by the source of its kind (a folder: ``image_folder``; ``.csv``,
    ``.npz``, ``.jsonl``) with the training source's options when it is of the same kind
    (label column, feature columns, image color and size), and labels encoded as in
    training (``task``: the loss's ``classes``/``binary``/``values``; classes by
    ``class_names``). Returns a :class:`~trainctl.data.sources.SourceData`. Raises
    DataError for an unknown kind, bad options or bad data, or a class not among
    ``class_names``."""
    from pydantic import ValidationError

    from trainctl.data.sources import SourceData, sources

    path = Path(path)
    kind = "image_folder" if path.is_dir() else LABELLED.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown data kind {path.suffix!r}; give a .csv, .npz or .jsonl "
                        f"file or a folder of images in class sub-folders")
    same = training_source is not None and training_source.get("type") == kind
    options = {k: v for k, v in (training_source or {}).items() if k != "type"} if same else {}
    options["path"] = str(path)
    if kind == "csv":
        options.setdefault("label", "label")
    cls = sources.get(kind)
    if "task" in cls.Config.model_fields:
        options["task"] = "regression" if task == "values" else "classification"
        options["classes"] = list(class_names) if task != "values" and class_names else None
    try:
        config = cls.Config(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise DataError(f"{path}: cannot read it as {kind} data ({problems}); a spec with a "
                        f"{kind} source gives the options") from None
    data = cls.load(config, 0, None)
    if kind == "image_folder" and class_names:
        index = {name: i for i, name in enumerate(class_names)}
        unknown = [n for n in data.class_names if n not in index]
        if unknown:
            raise DataError(f"{path}: class folder(s) {', '.join(unknown)} are not classes of the "
                            f"model ({', '.join(class_names)})")
        y = np.array([index[data.class_names[c]] for c in data.y], dtype=np.int64)
        data = SourceData(data.x, y, len(class_names), class_names=class_names,
                          description=data.description)
    return data
