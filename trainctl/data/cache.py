"""``cache``: keep a pipeline's elements in memory or in a file (npz, no pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset, Key, transformations
from trainctl.data.steps import Step
from trainctl.data.structure import decode_layout, encode_layout, flatten, layout
from trainctl.errors import DataError

CACHE_FORMAT = 1


@transformations.register("cache")
class Cache(Step):
    """The input's elements of its first iteration (epoch 0, repetition 0), kept and
    replayed by every later iteration, as tf.data's cache does.

    ``filename=""`` keeps them in memory. Otherwise they are written, once the first
    iteration has run to its end, to ``filename`` (``.npz`` appended unless it ends so):
    a numpy archive with one array per leaf (ragged leaves as flat data plus shapes)
    and a JSON header, written to a temporary file and renamed; it is read back with
    ``allow_pickle=False``. An existing file is used as is (delete it when the input
    changes). Whatever epoch runs first, the cache holds epoch 0's elements, so resuming
    from a saved iterator state gives the same elements. An iteration stopped early
    stores nothing. Raises DataError for leaves of dtype object, an unwritable path or
    a file that is not such a cache.
    """

    def __init__(self, input: Dataset, filename: str | os.PathLike = ""):
        super().__init__(input)
        if not isinstance(filename, (str, os.PathLike)):
            raise DataError(f"cache: filename must be a path or '' (memory), got {filename!r}")
        self.filename = os.fspath(filename)
        self._elements: list[Any] | None = None

    @property
    def path(self) -> Path | None:
        """The cache file, or None for a memory cache."""
        if not self.filename:
            return None
        path = Path(self.filename)
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        first = tuple(0 for _ in key)
        if self._elements is None and self.path is not None and self.path.exists():
            self._elements = read_cache(self.path)
        if self._elements is not None:
            yield from self._elements[start:]
            return
        collected = []
        for i, element in enumerate(self.input._iterate(first)):
            collected.append(element)
            if i >= start:
                yield element
        if self.path is not None:
            write_cache(self.path, collected)
        self._elements = collected

    def _params(self) -> dict[str, Any]:
        return {"filename": self.filename}


def write_cache(path: Path, elements: list[Any]) -> None:
    """Write ``elements`` (structures of arrays) to ``path`` in the cache format."""
    arrays: dict[str, np.ndarray] = {}
    ragged = []
    structure = None
    if elements:
        structure = encode_layout(elements[0])
        columns = list(zip(*(flatten(e) for e in elements)))
        for e in elements:
            if layout(e) != layout(elements[0]):
                raise DataError(f"cache: elements have different structures: {layout(elements[0])} "
                                f"vs {layout(e)}")
        for k, column in enumerate(columns):
            column = [np.asarray(a) for a in column]
            if any(a.dtype == object for a in column):
                raise DataError("cache: cannot write arrays of Python objects to a file")
            if len({a.shape for a in column}) == 1:
                arrays[f"leaf{k}"] = np.stack(column)
                continue
            if len({a.ndim for a in column}) > 1:
                raise DataError(f"cache: component {k} changes rank between elements")
            ragged.append(k)
            arrays[f"leaf{k}_data"] = np.concatenate([a.ravel() for a in column])
            arrays[f"leaf{k}_shapes"] = np.array([a.shape for a in column], dtype=np.int64)
    header = {"format": CACHE_FORMAT, "count": len(elements), "layout": structure, "ragged": ragged}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cache: cannot write {str(path)!r}: {exc.strerror or exc}") from None


def read_cache(path: Path) -> list[Any]:
    """The elements stored at ``path`` by :func:`write_cache`; DataError if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive["header"]).decode())
            if header.get("format") != CACHE_FORMAT:
                raise DataError(f"cache: {str(path)!r} has format {header.get('format')!r}, "
                                f"not {CACHE_FORMAT}")
            count, structure = header["count"], header["layout"]
            if count == 0:
                return []
            columns = []
            k = 0
            while f"leaf{k}" in archive.files or f"leaf{k}_data" in archive.files:
                if k in header["ragged"]:
                    columns.append(_split(archive[f"leaf{k}_data"], archive[f"leaf{k}_shapes"]))
                else:
                    columns.append(list(archive[f"leaf{k}"]))
                k += 1
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(f"cache: cannot read {str(path)!r} as a cache file: {exc}") from None
    return [decode_layout(structure, [column[i] for column in columns]) for i in range(count)]


def _split(data: np.ndarray, shapes: np.ndarray) -> list[np.ndarray]:
    sizes = [int(np.prod(s)) for s in shapes]
    parts = np.split(data, np.cumsum(sizes)[:-1])
    return [p.reshape(tuple(int(d) for d in s)) for p, s in zip(parts, shapes)]
