"""Named map transforms, each against a numpy computation written out here."""

from __future__ import annotations

import numpy as np
import pytest

from trainctl.data import Dataset
from trainctl.data.transforms import (Cast, Normalize, OneHot, RandomCrop, RandomFlip, Resize,
                                      Standardize, Tokenize, transforms)
from trainctl.errors import DataError


def pairs(x, y=None):
    y = np.arange(len(x)) if y is None else y
    return Dataset.from_tensor_slices((np.asarray(x), np.asarray(y)))


def features(ds, epoch=0):
    return np.stack([np.asarray(x) for x, _ in ds.iterate(epoch)])


def test_standardize_with_train_statistics_and_batched_input():
    rng = np.random.default_rng(0)
    x = rng.normal(5, 3, size=(50, 3)).astype(np.float32)
    x[:, 1] = 2.0
    t = Standardize()
    t.fit(x, None)
    mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
    std[1] = 1.0
    np.testing.assert_allclose(t.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(t.std, std, rtol=1e-6)
    out = features(pairs(x).map(t))
    np.testing.assert_allclose(out, (x - mean) / std, rtol=1e-5, atol=1e-6)
    batched = pairs(x).batch(7).map(t)                       # leading axes broadcast
    np.testing.assert_allclose(np.concatenate([b for b, _ in batched]), out, rtol=1e-6)
    scalar = Standardize(per_feature=False)
    scalar.fit(x, None)
    assert np.ndim(scalar.mean) == 0 and scalar.std == pytest.approx(x.astype(np.float64).std())
    fixed = Standardize(mean=1.0, std=2.0)
    assert not fixed.needs_fit
    assert fixed.apply(np.array([5.0]), None).tolist() == [2.0]


def test_normalize_to_unit_range():
    x = np.array([[0, 10], [5, 30], [10, 20]], np.float32)
    t = Normalize()
    t.fit(x, None)
    np.testing.assert_allclose(t.apply(x, None), x / 30)
    per = Normalize(per_feature=True)
    per.fit(x, None)
    np.testing.assert_allclose(per.apply(x, None), [[0, 0], [0.5, 1], [1, 0.5]])
    pixels = Normalize(min=0, max=255)
    assert pixels.apply(np.array([0, 51, 255], np.uint8), None).tolist() == pytest.approx([0, 0.2, 1])


def test_one_hot_on_labels():
    t = OneHot()
    t.fit(None, 4)
    out = list(pairs(np.zeros((3, 1)), np.array([2, 0, 3])).map(t))
    np.testing.assert_array_equal(np.stack([y for _, y in out]), np.eye(4)[[2, 0, 3]])
    assert out[0][1].dtype == np.float32
    with pytest.raises(DataError, match=r"element 0 \(epoch 0\): one_hot: labels must be integers in \[0, 4\)"):
        list(pairs(np.zeros((1, 1)), np.array([4])).map(t))
    with pytest.raises(DataError, match="give depth"):
        OneHot().fit(None, None)


def test_cast():
    out = Cast(dtype="float16").apply(np.array([1, 2], np.int64), None)
    assert out.dtype == np.float16 and out.tolist() == [1, 2]
    with pytest.raises(DataError, match="tokenize it first"):
        Cast(dtype="float32").apply(np.array("text"), None)


def test_random_flip_is_seeded_per_element_and_takes_both_branches():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    ds = pairs(np.repeat(image[None], 400, axis=0)).map(RandomFlip(mode="horizontal", seed=1))
    out = features(ds)
    flipped = np.all(out == image[:, ::-1], axis=(1, 2))
    kept = np.all(out == image, axis=(1, 2))
    assert (flipped | kept).all() and 150 < flipped.sum() < 250
    assert np.array_equal(features(ds), out) and not np.array_equal(features(ds, 1), out)
    vertical = RandomFlip(mode="vertical").apply(image, np.random.default_rng(0))
    assert any(np.array_equal(vertical, v) for v in (image, image[::-1]))


def test_random_crop_windows_of_the_padded_image():
    image = np.arange(25, dtype=np.float32).reshape(5, 5) + 1
    padded = np.pad(image, 1)
    crop = RandomCrop(size=[4, 4], padding=1)
    offsets = set()
    for k in range(300):
        out = crop.apply(image, np.random.default_rng(k))
        found = [(i, j) for i in range(4) for j in range(4) if np.array_equal(padded[i:i + 4, j:j + 4], out)]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) == 16                                  # (7 - 4 + 1) ** 2 placements
    with pytest.raises(DataError, match="larger than the image"):
        RandomCrop(size=[9, 9]).apply(image, np.random.default_rng(0))


def test_resize_nearest_upscale_and_bilinear_constant():
    image = np.array([[1, 2], [3, 4]], np.uint8)
    up = Resize(size=[4, 4], method="nearest").apply(image, None)
    np.testing.assert_array_equal(up, np.kron(image, np.ones((2, 2), np.uint8)))
    flat = Resize(size=[3, 5]).apply(np.full((6, 4, 3), 0.25, np.float32), None)
    assert flat.shape == (3, 5, 3) and flat.dtype == np.float32
    np.testing.assert_allclose(flat, 0.25, rtol=1e-6)
    with pytest.raises(DataError, match="expected an image"):
        Resize(size=[2, 2]).apply(np.zeros(3), None)


def test_tokenize_vocabulary_by_frequency_then_token():
    t = Tokenize(length=4)
    t.fit(np.array(["The cat sat", "the dog", "a CAT"]), None)
    assert t.vocabulary == {"cat": 2, "the": 3, "a": 4, "dog": 5, "sat": 6}
    assert t.apply(np.array("the bird"), None).tolist() == [3, 1, 0, 0]
    assert t.apply(np.array("a cat sat the dog"), None).tolist() == [4, 2, 6, 3]
    small = Tokenize(max_tokens=4)
    small.fit(np.array(["The cat sat", "the dog", "a CAT"]), None)
    assert small.apply(np.array("a cat"), None).tolist() == [1, 2]
    chars = Tokenize(level="char", lower=False)
    chars.fit(np.array(["abba"]), None)
    assert chars.apply(np.array("abc"), None).tolist() == [2, 3, 1]


def test_fitted_transforms_refuse_to_run_unfitted_and_all_are_registered():
    with pytest.raises(DataError, match="not fitted"):
        Standardize()((np.zeros(2), np.array(0)))
    assert set(transforms.names()) == {"standardize", "normalize", "one_hot", "cast",
                                       "random_flip", "random_crop", "resize", "tokenize"}
