"""Regenerate the small data files in this folder from scikit-learn's bundled data sets.

    python datasets/make_datasets.py [OUTPUT_DIR]      # default: this script's folder

Deterministic: the same scikit-learn data give byte-identical files (no timestamps in
the zip, gzip or PNG files). Needs numpy, scikit-learn and Pillow.
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, load_iris

PNG_PER_CLASS = 20
IDX_UBYTE = 0x08  # IDX element type code for unsigned bytes
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def write_iris_csv(out: Path) -> None:
    """iris.csv: header, 4 feature columns in cm, then the species name."""
    iris = load_iris()
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    lines = [",".join(columns)]
    for row, label in zip(iris.data, iris.target):
        lines.append(",".join(f"{v:g}" for v in row) + f",{iris.target_names[label]}")
    (out / "iris.csv").write_text("\n".join(lines) + "\n", encoding="ascii")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 digits as x uint8 [N, 8, 8] (pixel counts 0..16) and y int64 [N]."""
    digits = load_digits()
    return digits.images.astype(np.uint8), digits.target.astype(np.int64)


def write_digits_npz(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """digits.npz with arrays x and y, as numpy.savez_compressed but with fixed timestamps."""
    with zipfile.ZipFile(out / "digits.npz", "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("x", x), ("y", y)):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) in the IDX format of MNIST: magic, big-endian int32 dims, data."""
    header = struct.pack(">HBB", 0, IDX_UBYTE, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_digits_idx(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """digits-idx/{images-idx3,labels-idx1}-ubyte.gz, gzip with mtime 0."""
    folder = out / "digits-idx"
    folder.mkdir(exist_ok=True)
    for name, array in (("images-idx3-ubyte.gz", x), ("labels-idx1-ubyte.gz", y.astype(np.uint8))):
        with open(folder / name, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(idx_bytes(array))


def write_digits_png(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """digits-png/<class>/<index>.png: the first PNG_PER_CLASS images of each class.

    8x8 grayscale PNGs, pixel = round(count * 255 / 16); <index> is the image's index in
    the full set, zero-padded to 4 digits.
    """
    from PIL import Image

    folder = out / "digits-png"
    for label in range(10):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(y == label)[:PNG_PER_CLASS]:
            pixels = np.round(x[index].astype(np.float64) * 255 / 16).astype(np.uint8)
            image = Image.fromarray(pixels)  # 2-D uint8 gives mode "L" (8-bit grayscale)
            image.save(folder / str(label) / f"{index:04d}.png", optimize=True)


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    out.mkdir(parents=True, exist_ok=True)
    write_iris_csv(out)
    x, y = digits_arrays()
    write_digits_npz(out, x, y)
    write_digits_idx(out, x, y)
    write_digits_png(out, x, y)


if __name__ == "__main__":
    main(sys.argv)
