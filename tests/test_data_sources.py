"""Tests of trainctl.data sources, splits and the files in datasets/."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

from trainctl.data import SourceData, build_splits, load_source, sources
from trainctl.data.sources import describe_source
from trainctl.errors import DataError, UnknownNameError

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


def collect(ds):
    """All (x, y) of a batched dataset, concatenated."""
    xs, ys = zip(*ds) if ds.cardinality() else ((), ())
    return (np.concatenate(xs) if xs else np.zeros((0,))), (np.concatenate(ys) if ys else np.zeros((0,)))


# -- sources ------------------------------------------------------------------------------

def test_blobs_centres_sigma_and_balance():
    data = load_source({"type": "blobs", "n_samples": 2000}, seed=0)
    assert data.x.shape == (2000, 2) and data.x.dtype == np.float32 and data.y.dtype == np.int64
    assert data.num_classes == 2 and sorted(set(data.y.tolist())) == [0, 1]
    assert (data.y == 0).sum() == 1000
    for label, centre in ((0, (-1.0, 0.0)), (1, (1.0, 0.0))):
        points = data.x[data.y == label]
        np.testing.assert_allclose(points.mean(axis=0), centre, atol=0.1)
        np.testing.assert_allclose(points.std(axis=0), (0.5, 0.5), atol=0.05)


def test_blobs_default_config_and_seeding():
    default = load_source({"type": "blobs"}, seed=3)
    assert default.x.shape == (400, 2) and (default.y == 1).sum() == 200
    np.testing.assert_array_equal(default.x, load_source({"type": "blobs"}, seed=3).x)
    assert not np.array_equal(default.x, load_source({"type": "blobs"}, seed=4).x)
    wide = load_source({"type": "blobs", "n_samples": 4000, "sigma": 2.0}, seed=0)
    np.testing.assert_allclose(wide.x[wide.y == 1].std(axis=0), (2.0, 2.0), atol=0.15)


@pytest.mark.parametrize("name, n, features, classes", [
    ("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2),
])
def test_bundled_classification_sources(name, n, features, classes):
    data = load_source({"type": name})
    assert data.x.shape == (n, features) and data.x.dtype == np.float32
    assert data.y.shape == (n,) and data.y.dtype == np.int64
    assert data.num_classes == classes and len(data.class_names) == classes
    assert sorted(set(data.y.tolist())) == list(range(classes))


@pytest.mark.parametrize("name", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
def test_bundled_describe_matches_load(name):
    """describe() (constants, no scikit-learn) gives what load() gives, but the values."""
    source = sources.get(name)
    config = source.Config()
    loaded, described = source.load(config, 0), describe_source(source, config, 0)
    assert described.x.shape == loaded.x.shape and described.x.dtype == loaded.x.dtype
    assert described.y.shape == loaded.y.shape and described.y.dtype == loaded.y.dtype
    assert (described.num_classes, described.class_names) == (loaded.num_classes,
                                                               loaded.class_names)
    if loaded.num_classes is not None:
        assert set(described.y.tolist()) == set(loaded.y.tolist())


def test_digits_pixels_and_iris_names():
    digits = load_source({"type": "digits"})
    assert digits.x.min() == 0.0 and digits.x.max() == 16.0
    np.testing.assert_array_equal(digits.x[0, :8], [0, 0, 5, 13, 9, 1, 0, 0])
    iris = load_source({"type": "iris"})
    assert iris.class_names == ("setosa", "versicolor", "virginica")
    np.testing.assert_allclose(iris.x[0], [5.1, 3.5, 1.4, 0.2], rtol=1e-6)


def test_diabetes_is_regression():
    data = load_source({"type": "diabetes"})
    assert data.num_classes is None and data.y.dtype == np.float32 and data.x.shape == (442, 10)


def test_source_config_errors():
    with pytest.raises(UnknownNameError, match="digits"):
        load_source({"type": "digit"})
    with pytest.raises(DataError, match="n_sample"):
        load_source({"type": "blobs", "n_sample": 10})
    with pytest.raises(DataError, match="sigma"):
        load_source({"type": "blobs", "sigma": 0})
    with pytest.raises(DataError, match="n_samples"):
        load_source({"type": "blobs", "n_samples": True})       # a YAML true is not a number
    config = sources.get("blobs").Config(n_samples=10)
    assert len(load_source(config, seed=0)) == 10


def test_source_data_validation():
    with pytest.raises(DataError, match=r"\[0, 3\)"):
        SourceData(np.zeros((2, 1)), np.array([0, 3]), num_classes=3)
    with pytest.raises(DataError, match="same number"):
        SourceData(np.zeros((3, 1)), np.array([0, 1]), num_classes=2)


# -- splits -------------------------------------------------------------------------------

def indexed_source(n=300, classes=3):
    """x holds each sample's index, so samples can be traced through a split."""
    return SourceData(np.arange(n, dtype=np.float32)[:, None], np.arange(n) % classes,
                      num_classes=classes)


def test_split_sizes_stratification_and_disjointness():
    splits = build_splits(indexed_source(), validation=0.1, test=0.2, seed=1, batch_size=32)
    assert splits.sizes == {"train": 210, "validation": 30, "test": 60}
    assert splits.input_shape == (1,) and splits.num_classes == 3 and splits.stats is None
    seen = {}
    for name in ("train", "validation", "test"):
        x, y = collect(getattr(splits, name))
        ids = x[:, 0].astype(int)
        assert len(ids) == splits.sizes[name]
        np.testing.assert_array_equal(y, ids % 3)                 # labels travel with samples
        assert np.bincount(y, minlength=3).tolist() == [splits.sizes[name] // 3] * 3
        seen[name] = set(ids.tolist())
    assert not (seen["train"] & seen["validation"] or seen["train"] & seen["test"]
                or seen["validation"] & seen["test"])
    assert seen["train"] | seen["validation"] | seen["test"] == set(range(300))


def test_split_is_seeded_and_train_reshuffles_each_epoch():
    a = build_splits(indexed_source(), seed=5, batch_size=300)
    b = build_splits(indexed_source(), seed=5, batch_size=300)
    c = build_splits(indexed_source(), seed=6, batch_size=300)
    epoch0 = next(iter(a.train))[0][:, 0]
    np.testing.assert_array_equal(epoch0, next(iter(b.train))[0][:, 0])
    assert set(epoch0.tolist()) != set(next(iter(c.train))[0][:, 0].tolist())
    epoch1 = next(iter(a.train))[0][:, 0]
    assert sorted(epoch0) == sorted(epoch1) and not np.array_equal(epoch0, epoch1)
    val = collect(a.validation)[0][:, 0]
    assert list(val) == sorted(val)                               # eval splits are not shuffled


def test_batching_of_the_three_splits():
    splits = build_splits(indexed_source(), validation=0.1, test=0.2, batch_size=64,
                          drop_remainder=True, eval_batch_size=25)
    assert [x.shape[0] for x, _ in splits.train] == [64, 64, 64]   # 210 = 3*64 + 18 dropped
    assert [x.shape[0] for x, _ in splits.test] == [25, 25, 10]
    assert [x.shape[0] for x, _ in splits.validation] == [25, 5]
    unshuffled = build_splits(indexed_source(), shuffle=False, batch_size=500)
    ids = next(iter(unshuffled.train))[0][:, 0]
    assert list(ids) == sorted(ids)


def test_zero_fraction_gives_an_empty_split():
    splits = build_splits(indexed_source(), validation=0.0, test=0.0)
    assert splits.sizes == {"train": 300, "validation": 0, "test": 0}
    assert splits.validation.cardinality() == 0 and list(splits.test) == []


def test_standardize_uses_train_statistics_only():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(400, 3)).astype(np.float32)
    x[:, 2] = 7.0                                                 # constant feature: std 0 → 1
    source = SourceData(x, np.arange(400) % 2, num_classes=2)
    raw = build_splits(source, seed=2, shuffle=False, batch_size=1000)
    std = build_splits(source, seed=2, shuffle=False, batch_size=1000, standardize=True)
    raw_train, raw_val = collect(raw.train)[0], collect(raw.validation)[0]
    mean = raw_train.astype(np.float64).mean(axis=0)
    scale = raw_train.astype(np.float64).std(axis=0)
    scale[2] = 1.0
    np.testing.assert_allclose(std.stats.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(std.stats.std, scale, rtol=1e-6)
    train = collect(std.train)[0]
    np.testing.assert_allclose(train[:, :2].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train[:, :2].std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(train[:, 2], 0.0)
    np.testing.assert_allclose(collect(std.validation)[0], (raw_val - mean) / scale, atol=1e-5)
    assert not np.allclose(std.stats.mean, x.mean(axis=0), atol=1e-6)  # not the full data's


def test_regression_split_is_not_stratified():
    splits = build_splits(load_source({"type": "diabetes"}), seed=0)
    assert splits.num_classes is None and sum(splits.sizes.values()) == 442
    assert collect(splits.test)[1].dtype == np.float32


@pytest.mark.parametrize("kwargs, words", [
    ({"validation": 0.5, "test": 0.5}, "no training data"),
    ({"validation": 0.6, "test": 0.5}, "no training data"),
    ({"validation": -0.1}, "validation"),
    ({"test": 1.0}, "test"),
    ({"test": "0.2"}, "test"),
    ({"batch_size": 0}, "batch_size"),
    ({"eval_batch_size": 0}, "eval_batch_size"),
    ({"batch_size": 500, "drop_remainder": True}, "no training batch"),
    ({"seed": -1}, "seed"),
])
def test_split_errors(kwargs, words):
    with pytest.raises(DataError, match=words):
        build_splits(indexed_source(), **kwargs)


def test_impossible_stratified_split_is_a_data_error():
    tiny = SourceData(np.zeros((10, 1)), np.arange(10) % 5, num_classes=5)
    with pytest.raises(DataError, match="stratif"):
        build_splits(tiny, validation=0.0, test=0.2)
    assert build_splits(tiny, validation=0.0, test=0.2, stratify=False).sizes["test"] == 2


# -- datasets/ files ----------------------------------------------------------------------

def test_iris_csv_matches_sklearn():
    with open(DATASETS / "iris.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    iris = load_iris()
    assert len(rows) == 151
    np.testing.assert_allclose([[float(v) for v in r[:4]] for r in rows[1:]], iris.data)
    assert [r[4] for r in rows[1:]] == [iris.target_names[t] for t in iris.target]


def test_digits_npz_and_idx_match_sklearn():
    digits = load_digits()
    with np.load(DATASETS / "digits.npz") as npz:
        assert npz["x"].dtype == np.uint8 and npz["x"].shape == (1797, 8, 8)
        np.testing.assert_array_equal(npz["x"], digits.images)
        np.testing.assert_array_equal(npz["y"], digits.target)
    images = gzip.open(DATASETS / "digits-idx" / "images-idx3-ubyte.gz").read()
    labels = gzip.open(DATASETS / "digits-idx" / "labels-idx1-ubyte.gz").read()
    assert images[:16] == bytes.fromhex("00000803" "00000705" "00000008" "00000008")
    assert labels[:8] == bytes.fromhex("00000801" "00000705")
    np.testing.assert_array_equal(np.frombuffer(images, np.uint8, offset=16).reshape(1797, 8, 8),
                                  digits.images)
    np.testing.assert_array_equal(np.frombuffer(labels, np.uint8, offset=8), digits.target)


def test_digits_png_folder():
    image_module = pytest.importorskip("PIL.Image")
    digits = load_digits()
    files = sorted(DATASETS.glob("digits-png/*/*.png"))
    assert len(files) == 200
    assert sorted({f.parent.name for f in files}) == [str(c) for c in range(10)]
    for path in files[::17]:
        index, label = int(path.stem), int(path.parent.name)
        assert digits.target[index] == label
        with image_module.open(path) as image:
            assert image.mode == "L" and image.size == (8, 8)
            pixels = np.asarray(image, dtype=np.float64)
        np.testing.assert_array_equal(np.round(pixels * 16 / 255), digits.images[index])


def test_datasets_folder_is_small():
    total = sum(p.stat().st_size for p in DATASETS.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_char_sequences_windows_and_next_characters(tmp_path):
    (tmp_path / "a.txt").write_text("abcabd\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("ba", encoding="utf-8")
    data = load_source({"type": "char_sequences", "path": "*.txt", "sequence_length": 3,
                        "stride": 2}, base_dir=tmp_path)
    text = "abcabd\nba"
    vocab = sorted(set(text))
    assert data.class_names == tuple(vocab) and data.num_classes == len(vocab) == 5
    starts = range(0, len(text) - 3, 2)
    expect_x = [[vocab.index(c) for c in text[s:s + 3]] for s in starts]
    expect_y = [[vocab.index(c) for c in text[s + 1:s + 4]] for s in starts]
    np.testing.assert_array_equal(data.x, expect_x)
    np.testing.assert_array_equal(data.y, expect_y)
    assert data.x.dtype == np.float32 and data.y.dtype == np.int64 and data.y.shape == (3, 3)
    with pytest.raises(DataError, match="fewer than sequence_length"):
        load_source({"type": "char_sequences", "path": "b.txt", "sequence_length": 2},
                    base_dir=tmp_path)
    splits = build_splits(data, validation=0.3, test=0.0, batch_size=2)  # not stratified
    assert splits.sizes == {"train": 2, "validation": 1, "test": 0}
