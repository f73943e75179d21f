"""Readers of data files into numpy arrays: NPY/NPZ, IDX, image folders, text lines,
JSON Lines, and globs of many files. CSV is in :mod:`trainctl.data.csv_reader`.

Every reader raises :class:`~trainctl.errors.DataError` naming the file (and the line or
record where there is one) for a missing, unreadable or malformed file. Nothing is
unpickled: numpy files are loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.errors import DataError

#: files larger than this are memory-mapped rather than read (NPY, NPZ members stored
#: uncompressed, uncompressed IDX)
MMAP_BYTES = 64 * 2**20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def expand(pattern: str | os.PathLike, base_dir: str | os.PathLike | None = None) -> list[Path]:
    """The files ``pattern`` names: one path, or a glob (``data/*.csv``, ``**`` allowed),
    relative to ``base_dir`` when not absolute; sorted. DataError when nothing matches."""
    text = os.fspath(pattern)
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if glob.has_magic(text):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"{path}: no file matches this pattern")
        return found
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return [path]


def _open_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None


# -- NPY / NPZ ---------------------------------------------------------------------------

def read_npy(path: str | os.PathLike, mmap: bool | None = None) -> np.ndarray:
    """The array in an ``.npy`` file; memory-mapped read-only (``mmap_mode='r'``) when
    ``mmap`` is true or, with None, when the file is larger than :data:`MMAP_BYTES`."""
    path = Path(path)
    if mmap is None:
        mmap = path.stat().st_size > MMAP_BYTES
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a numpy .npy file without objects: {exc}") from None


def read_npz(path: str | os.PathLike, mmap: bool | None = None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name. When ``mmap`` is true or, with None, the
    archive is larger than :data:`MMAP_BYTES`, members stored uncompressed (``np.savez``)
    are memory-mapped read-only where they lie in the zip file; compressed members
    (``np.savez_compressed``) are read into memory."""
    path = Path(path)
    if mmap is None:
        mmap = path.stat().st_size > MMAP_BYTES
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise DataError(f"{path}: an .npy file, not an .npz archive")
            mapped = _stored_members(path) if mmap else {}
            return {name: mapped[name] if name in mapped else archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a numpy .npz archive without objects: {exc}") from None


def _stored_members(path: Path) -> dict[str, np.ndarray]:
    """Memory maps of the uncompressed ``.npy`` members of the zip file at ``path``, by
    array name. A stored member is the ``.npy`` file's bytes, after the member's local
    header (PKWARE APPNOTE 4.3.7: 30 bytes, the name, the extra field)."""
    out = {}
    with zipfile.ZipFile(path) as archive, open(path, "rb") as fh:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            fh.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(fh)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(fh))
            if dtype.hasobject or not shape or 0 in shape:
                continue                  # left to np.load (which refuses objects)
            out[info.filename[:-4]] = np.memmap(path, dtype=dtype, mode="r", offset=fh.tell(),
                                                shape=shape, order="F" if fortran else "C")
    return out


# -- IDX (MNIST) -------------------------------------------------------------------------

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, mmap: bool | None = None) -> np.ndarray:
    """The array in an IDX file (the format of MNIST, http://yann.lecun.com/exdb/mnist/):
    two zero bytes, a type code (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D
    float32, 0x0E float64), the number of dimensions, the sizes as big-endian uint32, then
    the data in C order, big-endian.

    Gzip-compressed files (recognised by their first bytes) are decompressed in memory;
    an uncompressed file is memory-mapped when ``mmap`` (None: when larger than
    :data:`MMAP_BYTES`). Returns native-endian data (uint8 stays uint8). Raises
    DataError for a bad magic number, an unknown type or a size that does not match.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    size = path.stat().st_size
    if mmap is None:
        mmap = not compressed and size > MMAP_BYTES
    if compressed or not mmap:
        data = _open_bytes(path)
        shape, dtype, offset = _idx_header(path, data[:4 + 4 * 255], len(data))
        array = np.frombuffer(data, dtype=dtype, count=int(np.prod(shape)), offset=offset)
        return array.reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    with open(path, "rb") as fh:
        head = fh.read(4 + 4 * 255)
    shape, dtype, offset = _idx_header(path, head, size)
    array = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def _idx_header(path: Path, head: bytes, total: int) -> tuple[tuple[int, ...], np.dtype, int]:
    if len(head) < 4 or head[:2] != b"\0\0":
        raise DataError(f"{path}: not an IDX file (it must start with two zero bytes)")
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        raise DataError(f"{path}: unknown IDX data type 0x{code:02X}")
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: the IDX header is cut short")
    shape = struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[code])
    offset = 4 + 4 * ndim
    need = offset + int(np.prod(shape)) * dtype.itemsize
    if total != need:
        raise DataError(f"{path}: the IDX header gives shape {list(shape)} of {dtype.name} "
                        f"({need} bytes with the header) but the data hold {total} bytes")
    return tuple(int(d) for d in shape), dtype, offset


# -- image folders ------------------------------------------------------------------------

def read_image_folder(root: str | os.PathLike, size: tuple[int, int] | None = None,
                      color: str = "grayscale", workers: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], list[Path]]:
    """Images in ``root/<class>/<file>`` (one sub-folder per class, sorted by name).

    Returns ``(x, y, class_names, files)``: x uint8 [N, H, W] (``color="grayscale"``) or
    [N, H, W, 3] (``"rgb"``), y int64 [N] class indices, files in the order of x (by
    class, then file name). ``size`` is (height, width) to resize every image to
    (bilinear, Pillow's ``Image.resize``); without it all images must share one size.
    Decoding runs in ``workers`` threads (Pillow releases the GIL while decoding).
    Raises DataError for a folder without class sub-folders or images, an unreadable
    image, or images of different sizes without ``size``.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files, labels = [], []
    for k, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [k] * len(found)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders")
    if color not in ("grayscale", "rgb"):
        raise DataError(f"image folder: color must be 'grayscale' or 'rgb', got {color!r}")
    mode = "L" if color == "grayscale" else "RGB"

    def load(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                image = image.convert(mode)
                if size is not None:
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{path}: cannot read as an image: {exc}") from None

    with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
        images = list(pool.map(load, files))
    first = images[0].shape
    for path, image in zip(files, images):
        if image.shape != first:
            raise DataError(f"{path}: image of size {image.shape[1]}x{image.shape[0]} differs from "
                            f"{files[0].name}'s {first[1]}x{first[0]}; give a size to resize to")
    return np.stack(images), np.array(labels, dtype=np.int64), tuple(classes), files


# -- text and JSON Lines ------------------------------------------------------------------

def read_lines(paths: list[Path], skip_empty: bool = False) -> Iterator[tuple[Path, int, str]]:
    """``(file, line number, text)`` of every line of UTF-8 text files, without the end of
    line; DataError naming the file for one that is not UTF-8."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    text = line.rstrip("\r\n")
                    if skip_empty and not text.strip():
                        continue
                    yield path, number, text
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_jsonl(paths: list[Path]) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """``(file, line number, object)`` of every non-empty line of JSON Lines files
    (https://jsonlines.org); DataError naming file and line for a line that is not a JSON
    object."""
    for path, number, text in read_lines(paths, skip_empty=True):
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        yield path, number, record
