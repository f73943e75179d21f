"""Named map transforms: what a spec's pipeline steps ``{type: standardize}`` etc. apply.

Each transform is a class registered in :data:`transforms`, with a ``Config`` of its spec
options, acting on one component of an element: ``on: features`` (the first member of a
``(features, label)`` pair, or the whole element when it is not a tuple) or
``on: label``. Transforms work on one element or on a batch (leading axes broadcast),
except the random ones, which act per element (put them before ``batch``).

Transforms with ``needs_fit`` (standardize, normalize, tokenize) learn their statistics
from the *train* split (:meth:`Transform.fit`); the validation and test pipelines reuse
the fitted train transform. Random transforms draw from a generator seeded by
``[seed, epoch, repetition..., element index]``, the same whatever the threads.
"""

from __future__ import annotations

import collections
import re
from typing import Any, Literal, Optional

from trainctl.data.lazy import numpy as np
from pydantic import Field

from trainctl import spec
from trainctl.data.parallel import ElementTransform
from trainctl.errors import DataError
from trainctl.registry import Registry

#: name → Transform subclass; the names are spec step types
transforms: Registry[type["Transform"]] = Registry("map transform")

On = Literal["features", "label"]


class Transform(ElementTransform):
    """A named map transform built from its validated ``config``."""

    class Config(spec.Config):
        on: On = "features"

    needs_fit = False

    def __init__(self, config: Any = None, seed: int = 0, **options: Any):
        self.config = config if config is not None else self.Config(**options)
        self.seed = int(seed)
        self.fitted = False

    @property
    def name(self) -> str:
        return getattr(type(self), "registered_name", type(self).__name__)

    def describe(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config.model_dump().items())
        return f"{self.name}({options})"

    def fit(self, values: np.ndarray, num_classes: int | None) -> None:
        """Learn statistics from ``values``, the component of all train elements stacked
        ([N, ...], or a list of texts); ``num_classes`` is the source's class count."""
        self.fitted = True

    def fitted_state(self) -> dict[str, Any]:
        """What :meth:`fit` learnt (numpy arrays or JSON values), stored with checkpoints
        (:mod:`trainctl.data.preprocess`); empty for a transform that learns nothing."""
        return {}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`fitted_state` gave; the transform counts as fitted."""
        self.fitted = True

    def apply(self, value: Any, rng: np.random.Generator | None) -> Any:
        raise NotImplementedError

    def __call__(self, element: Any, rng: np.random.Generator | None = None) -> Any:
        if self.needs_fit and not self.fitted:
            raise DataError(f"{self.name}: not fitted; its statistics come from the train split")
        label = self.config.on == "label"
        if isinstance(element, tuple):
            if label and len(element) < 2:
                raise DataError(f"{self.name}: on: label needs (features, label) elements")
            k = 1 if label else 0
            return element[:k] + (self.apply(element[k], rng),) + element[k + 1:]
        if label:
            raise DataError(f"{self.name}: on: label needs (features, label) elements")
        return self.apply(element, rng)


def _stats_axes(values: np.ndarray, per_feature: bool) -> tuple[int, ...] | None:
    return (0,) if per_feature else None


@transforms.register("standardize")
class Standardize(Transform):
    """``(x - mean) / std`` as float32, with the train split's per-feature mean and
    population standard deviation (computed in float64; a std of 0 counts as 1, so a
    constant feature is only centred). ``mean`` and ``std`` may be given instead;
    ``per_feature: false`` uses one mean and std over all values."""

    class Config(spec.Config):
        on: On = "features"
        mean: Optional[float] = None
        std: Optional[float] = Field(None, gt=0)
        per_feature: bool = True

    batchable = True

    def __init__(self, config: Any = None, seed: int = 0, **options: Any):
        super().__init__(config, seed, **options)
        self.needs_fit = self.config.mean is None or self.config.std is None
        self.mean = None if self.config.mean is None else np.float32(self.config.mean)
        self.std = None if self.config.std is None else np.float32(self.config.std)

    def fit(self, values: np.ndarray, num_classes: int | None) -> None:
        x = np.asarray(values, dtype=np.float64)
        axes = _stats_axes(x, self.config.per_feature)
        if self.config.mean is None:
            self.mean = x.mean(axis=axes).astype(np.float32)
        if self.config.std is None:
            std = np.asarray(x.std(axis=axes))
            std[std == 0] = 1.0
            self.std = std.astype(np.float32)
        self.fitted = True

    def fitted_state(self) -> dict[str, Any]:
        return {"mean": np.asarray(self.mean, np.float32), "std": np.asarray(self.std, np.float32)}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.mean = np.asarray(state["mean"], np.float32)
        self.std = np.asarray(state["std"], np.float32)
        self.fitted = True

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        return ((np.asarray(value, np.float32) - self.mean) / self.std).astype(np.float32)


@transforms.register("normalize")
class Normalize(Transform):
    """``(x - min) / (max - min)`` as float32: values of the train split's range map to
    [0, 1] (a range of 0 counts as 1). ``min``/``max`` may be given instead (e.g. 0 and
    255 for 8-bit images); ``per_feature: false`` (the default) uses the overall range."""

    class Config(spec.Config):
        on: On = "features"
        min: Optional[float] = None
        max: Optional[float] = None
        per_feature: bool = False

    batchable = True

    def __init__(self, config: Any = None, seed: int = 0, **options: Any):
        super().__init__(config, seed, **options)
        self.needs_fit = self.config.min is None or self.config.max is None
        self.low = None if self.config.min is None else np.float32(self.config.min)
        self.high = None if self.config.max is None else np.float32(self.config.max)

    def fit(self, values: np.ndarray, num_classes: int | None) -> None:
        x = np.asarray(values, dtype=np.float64)
        axes = _stats_axes(x, self.config.per_feature)
        if self.config.min is None:
            self.low = x.min(axis=axes).astype(np.float32)
        if self.config.max is None:
            self.high = x.max(axis=axes).astype(np.float32)
        self.fitted = True

    def fitted_state(self) -> dict[str, Any]:
        return {"min": np.asarray(self.low, np.float32), "max": np.asarray(self.high, np.float32)}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.low = np.asarray(state["min"], np.float32)
        self.high = np.asarray(state["max"], np.float32)
        self.fitted = True

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        span = np.asarray(self.high - self.low, dtype=np.float32)
        span = np.where(span == 0, np.float32(1), span)
        return ((np.asarray(value, np.float32) - self.low) / span).astype(np.float32)


@transforms.register("one_hot")
class OneHot(Transform):
    """Class indices (any shape) → float32 one-hot vectors [..., depth]; ``depth``
    defaults to the source's number of classes. DataError for an index outside
    [0, depth)."""

    class Config(spec.Config):
        on: On = "label"
        depth: Optional[int] = Field(None, gt=0)

    batchable = True

    def __init__(self, config: Any = None, seed: int = 0, **options: Any):
        super().__init__(config, seed, **options)
        self.depth = self.config.depth
        self.needs_fit = self.depth is None

    def fit(self, values: Any, num_classes: int | None) -> None:
        if self.depth is None:
            if num_classes is None:
                raise DataError("one_hot: the source has no classes; give depth")
            self.depth = int(num_classes)
        self.fitted = True

    def fitted_state(self) -> dict[str, Any]:
        return {"depth": self.depth}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.depth = int(state["depth"])
        self.fitted = True

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        index = np.asarray(value)
        if index.dtype.kind not in "iub" or (index.size and (index.min() < 0 or index.max() >= self.depth)):
            raise DataError(f"one_hot: labels must be integers in [0, {self.depth}), got {index.tolist()}")
        return np.eye(self.depth, dtype=np.float32)[index]


DTYPES = Literal["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]


@transforms.register("cast")
class Cast(Transform):
    """The component converted to ``dtype`` (numpy's ``astype``)."""

    class Config(spec.Config):
        on: On = "features"
        dtype: DTYPES

    batchable = True

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype.kind == "U":
            raise DataError(f"cast: cannot cast text to {self.config.dtype}; tokenize it first")
        return array.astype(self.config.dtype)


def _image(value: Any, name: str) -> np.ndarray:
    image = np.asarray(value)
    if image.ndim not in (2, 3):
        raise DataError(f"{name}: expected an image [height, width] or [height, width, channels], "
                        f"got shape {list(image.shape)}")
    return image


@transforms.register("random_flip")
class RandomFlip(Transform):
    """Flip an image [H, W(, C)] left-right (``horizontal``), upside down (``vertical``)
    or each independently (``horizontal_and_vertical``), each with probability 1/2."""

    class Config(spec.Config):
        on: On = "features"
        mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = "horizontal"

    random = True

    def apply(self, value: Any, rng: np.random.Generator) -> np.ndarray:
        image = _image(value, "random_flip")
        flips = rng.random(2) < 0.5
        if self.config.mode != "vertical" and flips[0]:
            image = image[:, ::-1]
        if self.config.mode != "horizontal" and flips[1]:
            image = image[::-1]
        return np.ascontiguousarray(image)


@transforms.register("random_crop")
class RandomCrop(Transform):
    """A uniformly placed ``size`` [height, width] window of an image [H, W(, C)], after
    padding ``padding`` zeros on each side (torchvision's RandomCrop(padding))."""

    class Config(spec.Config):
        on: On = "features"
        size: list[int] = Field(min_length=2, max_length=2)
        padding: int = Field(0, ge=0)

    random = True

    def apply(self, value: Any, rng: np.random.Generator) -> np.ndarray:
        image = _image(value, "random_crop")
        p = self.config.padding
        if p:
            image = np.pad(image, [(p, p), (p, p)] + [(0, 0)] * (image.ndim - 2))
        h, w = self.config.size
        if h > image.shape[0] or w > image.shape[1]:
            raise DataError(f"random_crop: size {[h, w]} is larger than the image "
                            f"{list(image.shape[:2])} (with padding)")
        top = int(rng.integers(image.shape[0] - h + 1))
        left = int(rng.integers(image.shape[1] - w + 1))
        return np.ascontiguousarray(image[top:top + h, left:left + w])


@transforms.register("resize")
class Resize(Transform):
    """An image [H, W(, C)] resized to ``size`` [height, width] with Pillow
    (``bilinear`` or ``nearest``); uint8 images stay uint8, others become float32."""

    class Config(spec.Config):
        on: On = "features"
        size: list[int] = Field(min_length=2, max_length=2)
        method: Literal["bilinear", "nearest"] = "bilinear"

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        from PIL import Image

        image = _image(value, "resize")
        h, w = self.config.size
        method = Image.Resampling.BILINEAR if self.config.method == "bilinear" else Image.Resampling.NEAREST
        planes = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[2])]
        out = []
        for plane in planes:
            if plane.dtype == np.uint8:
                out.append(np.asarray(Image.fromarray(plane).resize((w, h), method)))
            else:
                pic = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
                out.append(np.asarray(pic.resize((w, h), method), dtype=np.float32))
        return out[0] if image.ndim == 2 else np.stack(out, axis=-1)


WORD = re.compile(r"[\w']+")


@transforms.register("tokenize")
class Tokenize(Transform):
    """Text → int64 token ids, with a vocabulary of the train split's most frequent
    tokens (ties in token order) as Keras' TextVectorization builds it: id 0 is padding,
    1 out-of-vocabulary, then the tokens by frequency, ``max_tokens`` ids in all.
    ``level: word`` splits on ``[\\w']+`` runs (after lower-casing when ``lower``),
    ``char`` into characters. With ``length`` the ids are cut or padded with 0 to that
    length ([length]); without it they vary in length (use padded_batch)."""

    class Config(spec.Config):
        on: On = "features"
        level: Literal["word", "char"] = "word"
        max_tokens: int = Field(20000, ge=3)
        length: Optional[int] = Field(None, gt=0)
        lower: bool = True

    needs_fit = True

    def __init__(self, config: Any = None, seed: int = 0, **options: Any):
        super().__init__(config, seed, **options)
        self.vocabulary: dict[str, int] = {}

    def tokens(self, text: str) -> list[str]:
        text = text.lower() if self.config.lower else text
        return WORD.findall(text) if self.config.level == "word" else list(text)

    def fit(self, values: Any, num_classes: int | None) -> None:
        counts: collections.Counter = collections.Counter()
        for text in np.asarray(values).ravel().tolist():
            counts.update(self.tokens(str(text)))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:self.config.max_tokens - 2]
        self.vocabulary = {token: i + 2 for i, (token, _) in enumerate(ranked)}
        self.fitted = True

    def fitted_state(self) -> dict[str, Any]:
        return {"vocabulary": dict(self.vocabulary)}

    def load_fitted_state(self, state: dict[str, Any]) -> None:
        self.vocabulary = {str(k): int(v) for k, v in state["vocabulary"].items()}
        self.fitted = True

    def apply(self, value: Any, rng: Any) -> np.ndarray:
        text = np.asarray(value)
        if text.dtype.kind != "U" or text.ndim != 0:
            raise DataError(f"tokenize: expected one text per element, got {text.dtype} of shape "
                            f"{list(text.shape)}")
        ids = [self.vocabulary.get(t, 1) for t in self.tokens(str(text))]
        n = self.config.length
        if n is not None:
            ids = ids[:n] + [0] * max(0, n - len(ids))
        return np.array(ids, dtype=np.int64)
