"""File readers and file sources, checked against scikit-learn's copies of the same data,
hand-written files and Pillow/numpy written independently of the readers."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

from trainctl.data import load_source
from trainctl.data import readers
from trainctl.data.readers import read_idx, read_npy, read_npz
from trainctl.errors import DataError

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
IRIS_CSV = DATASETS / "iris.csv"


def csv_source(path, **options):
    return load_source({"type": "csv", "path": str(path), **options})


# -- CSV ----------------------------------------------------------------------------------

def test_csv_iris_matches_sklearn():
    data = csv_source(IRIS_CSV, label="species")
    iris = load_iris()
    np.testing.assert_allclose(data.x, iris.data, rtol=1e-6)
    np.testing.assert_array_equal(data.y, iris.target)     # sorted names = sklearn's order
    assert data.class_names == ("setosa", "versicolor", "virginica") and data.num_classes == 3
    assert data.feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")


def test_csv_column_selection_class_order_and_path_relative_to_base(tmp_path):
    data = load_source({"type": "csv", "path": "iris.csv", "label": "species",
                        "columns": ["petal_width", "sepal_length"],
                        "classes": ["virginica", "versicolor", "setosa"]}, base_dir=DATASETS)
    iris = load_iris()
    np.testing.assert_allclose(data.x, iris.data[:, [3, 0]], rtol=1e-6)
    np.testing.assert_array_equal(data.y, 2 - iris.target)


def test_csv_unknown_column_suggests_the_closest(tmp_path):
    with pytest.raises(DataError, match=r"iris\.csv:1: csv label: no column 'specis'.*did you mean 'species'"):
        csv_source(IRIS_CSV, label="specis")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_malformed_row_names_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.csv", "a,b,label\n1,2,x\n3,4,y\n5,x\n")
    with pytest.raises(DataError, match=r"bad\.csv:4: expected 3 fields .*got 2"):
        csv_source(bad, label="label")
    typed = write(tmp_path / "typed.csv", "a,b,label\n1,2,x\n\n3,oops,y\n")
    with pytest.raises(DataError, match=r"typed\.csv:4: column 'b': 'oops' is not a number"):
        csv_source(typed, label="label")


def test_type_inference_int_labels_and_regression(tmp_path):
    ints = write(tmp_path / "ints.csv", "x,y\n0.5,0\n1.5,2\n2.5,1\n")
    data = csv_source(ints, label="y")
    assert data.num_classes == 3 and data.y.tolist() == [0, 2, 1] and data.y.dtype == np.int64
    floats = write(tmp_path / "floats.csv", "x,y\n1,0.25\n2,1.5\n")
    reg = csv_source(floats, label="y")
    assert reg.num_classes is None and reg.y.tolist() == [0.25, 1.5] and reg.y.dtype == np.float32
    with pytest.raises(DataError, match=r"floats\.csv:2: class label 0.25"):
        csv_source(floats, label="y", task="classification")
    text = write(tmp_path / "text.csv", "review,label\ngreat film,pos\nawful,neg\n")
    data = csv_source(text, label="label")
    assert data.x.tolist() == ["great film", "awful"] and data.class_names == ("neg", "pos")
    mixed = write(tmp_path / "mixed.csv", "a,name,label\n1,bob,x\n")
    with pytest.raises(DataError, match="column 'name' holds text"):
        csv_source(mixed, label="label")


MISSING = "a,b,label\n1,10,x\n,20,y\n3,NA,x\n5,40,y\n"


@pytest.mark.parametrize("policy, rows, a, b", [
    ("drop", [0, 3], [1, 5], [10, 40]),
    ("zero", [0, 1, 2, 3], [1, 0, 3, 5], [10, 20, 0, 40]),
    ("mean", [0, 1, 2, 3], [1, 3, 3, 5], [10, 20, 70 / 3, 40]),
])
def test_missing_value_policies(tmp_path, policy, rows, a, b):
    path = write(tmp_path / "m.csv", MISSING)
    data = csv_source(path, label="label", missing=policy)
    np.testing.assert_allclose(data.x, np.stack([a, b], axis=1), rtol=1e-6)
    assert data.y.tolist() == [[0, 1, 0, 1][r] for r in rows]


def test_missing_value_error_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "m.csv", MISSING)
    with pytest.raises(DataError, match=r"m\.csv:3: column 'a': missing value"):
        csv_source(path, label="label")


def test_glob_of_csv_files_concatenates_in_name_order(tmp_path):
    lines = IRIS_CSV.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    for k, start in enumerate((0, 50, 100)):
        write(tmp_path / f"part{k}.csv", "\n".join([header, *rows[start:start + 50]]) + "\n")
    whole = csv_source(IRIS_CSV, label="species")
    parts = csv_source(tmp_path / "part*.csv", label="species")
    np.testing.assert_array_equal(parts.x, whole.x)
    np.testing.assert_array_equal(parts.y, whole.y)
    write(tmp_path / "part3.csv", "other,species\n1,setosa\n")
    with pytest.raises(DataError, match=r"part3\.csv:1: header"):
        csv_source(tmp_path / "part*.csv", label="species")
    with pytest.raises(DataError, match="no file matches"):
        csv_source(tmp_path / "nothing*.csv", label="species")


# -- NPY / NPZ ----------------------------------------------------------------------------

def test_npz_source_matches_sklearn_digits():
    data = load_source({"type": "npz", "path": str(DATASETS / "digits.npz")})
    digits = load_digits()
    np.testing.assert_array_equal(data.x, digits.images)
    np.testing.assert_array_equal(data.y, digits.target)
    assert data.x.dtype == np.float32 and data.num_classes == 10


def test_npy_memory_mapped_when_large_and_never_unpickled(tmp_path, monkeypatch):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(6) % 2)
    assert not isinstance(read_npy(tmp_path / "x.npy"), np.memmap)
    monkeypatch.setattr(readers, "MMAP_BYTES", 16)
    mapped = read_npy(tmp_path / "x.npy")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, x)
    data = load_source({"type": "npy", "features": "x.npy", "labels": "y.npy"}, base_dir=tmp_path)
    np.testing.assert_array_equal(data.x, x)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):
        read_npy(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=np.array([None, 1], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz"):
        read_npz(tmp_path / "obj.npz")


def test_npz_members_stored_uncompressed_are_memory_mapped_when_large(tmp_path, monkeypatch):
    x = np.arange(60, dtype=np.float32).reshape(5, 3, 4)
    f = np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4))
    y = np.array([0, 1, 1, 0, 1])
    np.savez(tmp_path / "stored.npz", x=x, f=f, y=y, empty=np.zeros((0, 2)), scalar=np.float64(3))
    np.savez_compressed(tmp_path / "packed.npz", x=x, y=y)
    oracle = dict(np.load(tmp_path / "stored.npz"))          # numpy's own reader
    assert not isinstance(read_npz(tmp_path / "stored.npz")["x"], np.memmap)   # small: read
    monkeypatch.setattr(readers, "MMAP_BYTES", 16)
    got = read_npz(tmp_path / "stored.npz")
    assert sorted(got) == sorted(oracle)
    for name in ("x", "f", "y"):
        assert isinstance(got[name], np.memmap) and not got[name].flags.writeable, name
        assert got[name].dtype == oracle[name].dtype
        np.testing.assert_array_equal(got[name], oracle[name])
    assert got["f"].flags.f_contiguous
    np.testing.assert_array_equal(got["empty"], oracle["empty"])
    assert got["scalar"] == 3.0
    packed = read_npz(tmp_path / "packed.npz")
    assert not isinstance(packed["x"], np.memmap)
    np.testing.assert_array_equal(packed["x"], x)
    data = load_source({"type": "npz", "path": "stored.npz"}, base_dir=tmp_path)
    np.testing.assert_array_equal(data.x, x)
    np.testing.assert_array_equal(data.y, y)


# -- IDX ----------------------------------------------------------------------------------

def test_idx_gzip_and_plain_match_sklearn(tmp_path):
    digits = load_digits()
    images = read_idx(DATASETS / "digits-idx" / "images-idx3-ubyte.gz")
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images, digits.images)
    raw = gzip.decompress((DATASETS / "digits-idx" / "images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "images-idx3-ubyte").write_bytes(raw)
    mapped = read_idx(tmp_path / "images-idx3-ubyte", mmap=True)
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, digits.images)
    data = load_source({"type": "idx", "images": "digits-idx/images-idx3-ubyte.gz",
                        "labels": "digits-idx/labels-idx1-ubyte.gz"}, base_dir=DATASETS)
    np.testing.assert_array_equal(data.y, digits.target)


def test_idx_other_types_are_big_endian(tmp_path):
    values = np.array([[1, -2, 300], [-40000 // 2, 5, 6]], dtype=np.int16)
    header = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 3)
    body = b"".join(struct.pack(">h", int(v)) for v in values.ravel())
    (tmp_path / "a.idx").write_bytes(header + body)
    got = read_idx(tmp_path / "a.idx")
    assert got.dtype == np.int16 and got.dtype.isnative
    np.testing.assert_array_equal(got, values)


@pytest.mark.parametrize("data, words", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x01", "two zero bytes"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x01", "unknown IDX data type 0x07"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 3) + b"\x00\x01", r"shape \[3\].*hold 10 bytes"),
])
def test_bad_idx_files(tmp_path, data, words):
    (tmp_path / "bad.idx").write_bytes(data)
    with pytest.raises(DataError, match=words):
        read_idx(tmp_path / "bad.idx")


# -- image folders ------------------------------------------------------------------------

def test_image_folder_matches_sklearn_digits():
    data = load_source({"type": "image_folder", "path": str(DATASETS / "digits-png")})
    digits = load_digits()
    files = sorted(DATASETS.glob("digits-png/*/*.png"), key=lambda p: (p.parent.name, p.name))
    index = [int(p.stem) for p in files]
    assert data.x.shape == (200, 8, 8) and data.num_classes == 10
    np.testing.assert_array_equal(data.y, digits.target[index])
    np.testing.assert_array_equal(np.round(data.x * 16 / 255), digits.images[index])


def test_image_folder_resize_rgb_and_size_errors(tmp_path):
    from PIL import Image

    for label, value in (("a", 10), ("b", 200)):
        (tmp_path / label).mkdir()
        Image.fromarray(np.full((6, 4), value, np.uint8)).save(tmp_path / label / "0.png")
    data = load_source({"type": "image_folder", "path": str(tmp_path), "size": [3, 2],
                        "color": "rgb"})
    assert data.x.shape == (2, 3, 2, 3)
    np.testing.assert_array_equal(data.x[:, 0, 0, :], [[10] * 3, [200] * 3])  # constant stays
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "b" / "1.png")
    with pytest.raises(DataError, match=r"1\.png: image of size 5x5 differs"):
        load_source({"type": "image_folder", "path": str(tmp_path)})
    (tmp_path / "b" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"2\.png: cannot read as an image"):
        load_source({"type": "image_folder", "path": str(tmp_path), "size": [4, 4]})


# -- text and JSON Lines ------------------------------------------------------------------

def test_text_files_one_sample_per_line_labelled_by_folder(tmp_path):
    for label, lines in (("pos", "great\n\nloved it\n"), ("neg", "dull\n")):
        (tmp_path / label).mkdir()
        write(tmp_path / label / "a.txt", lines)
    data = load_source({"type": "text", "path": str(tmp_path / "*" / "*.txt")})
    assert data.x.tolist() == ["dull", "great", "loved it"]
    assert data.y.tolist() == [0, 1, 1] and data.class_names == ("neg", "pos")
    (tmp_path / "neg" / "b.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match=r"b\.txt: not UTF-8"):
        load_source({"type": "text", "path": str(tmp_path / "*" / "*.txt")})


def test_jsonl_records_and_malformed_line(tmp_path):
    records = [{"a": 1.5, "v": [1, 2], "label": "x"}, {"a": -1, "v": [3, 4], "label": "y"}]
    path = write(tmp_path / "r.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    data = load_source({"type": "jsonl", "path": str(path), "features": ["a", "v"], "label": "label"})
    np.testing.assert_array_equal(data.x, [[1.5, 1, 2], [-1, 3, 4]])
    assert data.y.tolist() == [0, 1]
    write(path, json.dumps(records[0]) + "\n{not json}\n")
    with pytest.raises(DataError, match=r"r\.jsonl:2: not valid JSON"):
        load_source({"type": "jsonl", "path": str(path), "features": ["a"], "label": "label"})
    write(path, json.dumps(records[0]) + "\n" + json.dumps({"a": 1}) + "\n")
    with pytest.raises(DataError, match=r"r\.jsonl:2: the record has no key 'label'"):
        load_source({"type": "jsonl", "path": str(path), "features": ["a"], "label": "label"})


# -- built-in synthetic sets --------------------------------------------------------------

def test_moons_and_circles_lie_on_their_curves_without_noise():
    moons = load_source({"type": "moons", "n_samples": 200, "noise": 0.0}, seed=1)
    upper, lower = moons.x[moons.y == 0], moons.x[moons.y == 1]
    np.testing.assert_allclose(np.hypot(*upper.T), 1.0, atol=1e-5)       # centre (0, 0)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-5)
    assert (upper[:, 1] >= -1e-6).all() and (lower[:, 1] <= 0.5 + 1e-6).all()
    circles = load_source({"type": "circles", "n_samples": 200, "noise": 0.0, "factor": 0.3})
    radius = np.hypot(*circles.x.T)
    np.testing.assert_allclose(radius[circles.y == 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(radius[circles.y == 1], 0.3, atol=1e-5)


def test_spirals_follow_their_arms_and_are_seeded():
    cfg = {"type": "spirals", "n_samples": 300, "classes": 3, "turns": 1.25, "noise": 0.0}
    data = load_source(cfg, seed=4)
    r = np.hypot(*data.x.T)
    angle = np.arctan2(data.x[:, 1], data.x[:, 0])
    expected = 2 * np.pi * (1.25 * r + data.y / 3)
    np.testing.assert_allclose(np.cos(angle - expected), 1.0, atol=1e-6)
    assert np.bincount(data.y).tolist() == [100, 100, 100]
    np.testing.assert_array_equal(load_source(cfg, seed=4).x, data.x)
    assert not np.array_equal(load_source(cfg, seed=5).x, data.x)
