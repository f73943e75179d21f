"""Named data sources: what a spec's ``data.source: {type: ...}`` loads.

Each source is a class registered in :data:`sources` under its spec ``type:``. It has a
nested ``Config`` (a :class:`trainctl.spec.Config`: extra keys are errors; the spec's
``type`` key is not part of it) and a classmethod ``load(config, seed, base_dir=None)
-> SourceData``. Bundled sets come with scikit-learn; nothing is downloaded. The
synthetic sets (blobs, moons, circles, spirals) are here; file formats are in
:mod:`trainctl.data.file_sources`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from trainctl.data.lazy import numpy as np
from pydantic import BaseModel, Field, ValidationError

from trainctl import spec
from trainctl.errors import DataError
from trainctl.registry import Registry

sources: Registry[type] = Registry("data source")


@dataclass(frozen=True)
class SourceData:
    """A whole data set in memory.

    - ``x``: float32 [N, ...] features, or str [N] texts (for a tokenize step).
    - ``y``: [N] int64 class indices in [0, num_classes) for classification, or float32
      targets for regression (``num_classes`` None); [N, ...] for a label per position
      (a language model's next tokens [N, T]).
    - ``feature_names``, ``class_names``: optional tuples of str.
    - ``description``: where the data came from.

    ``x`` and ``y`` are converted to those dtypes; DataError when that is impossible,
    when N differs between them, or when a label lies outside [0, num_classes).
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int | None
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
            raise DataError(f"source data: x of shape {list(x.shape)} and y of shape "
                            f"{list(y.shape)} do not hold the same number N of samples")
        if x.dtype.kind == "U":      # text, to be tokenized by a pipeline step
            object.__setattr__(self, "x", x)
        elif not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"source data: features must be numeric or text, got dtype {x.dtype}")
        else:
            object.__setattr__(self, "x", x.astype(np.float32, copy=False))
        object.__setattr__(self, "y", self._labels(y))
        for name in ("feature_names", "class_names"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))

    def _labels(self, y: np.ndarray) -> np.ndarray:
        if self.num_classes is None:
            return y.astype(np.float32, copy=False)
        if self.num_classes < 1:
            raise DataError(f"source data: num_classes must be >= 1, got {self.num_classes}")
        if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError("source data: class labels must be integers")
        labels = y.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise DataError(f"source data: labels must lie in [0, {self.num_classes}), "
                            f"got [{labels.min()}, {labels.max()}]")
        return labels

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True)
class SourceFacts:
    """What a source holds, without its arrays (for ``trainctl validate``, which must not
    import numpy): ``samples`` N, one sample's ``x_shape`` and ``y_shape`` (``()`` for one
    class index or value per sample), ``num_classes`` (None: regression) and
    ``class_names``, as :class:`SourceData` would have them."""

    samples: int
    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    num_classes: int | None
    class_names: tuple[str, ...] | None = None


def source_facts(source: type, config: spec.Config, seed: int,
                 base_dir: str | os.PathLike | None = None) -> SourceFacts:
    """:class:`SourceFacts` of ``source``: its ``facts`` classmethod where it has one (known
    sizes, options, a text's characters: no numpy), else read from :func:`describe_source`.
    Raises the DataErrors its ``load`` raises for data it cannot read."""
    if hasattr(source, "facts"):
        return source.facts(config, seed, base_dir)
    data = describe_source(source, config, seed, base_dir)
    return SourceFacts(len(data), tuple(int(n) for n in data.x.shape[1:]),
                       tuple(int(n) for n in data.y.shape[1:]), data.num_classes,
                       data.class_names)


def load_source(config: Mapping[str, Any] | spec.Config, seed: int = 0,
                base_dir: str | os.PathLike | None = None) -> SourceData:
    """Load the source ``config`` describes.

    ``config`` is a spec mapping such as ``{"type": "blobs", "n_samples": 200}`` or an
    instance of a registered source's ``Config``; file paths are relative to
    ``base_dir`` (default: the working directory). Raises UnknownNameError for an
    unknown type and DataError for a mapping its source's Config rejects (naming each
    bad key) or for data that cannot be read.
    """
    if isinstance(config, BaseModel):
        for _, source in sources.items():
            if type(config) is source.Config:
                return source.load(config, seed, base_dir)
        raise DataError(f"data source: {type(config).__qualname__} is no source's Config")
    if not isinstance(config, Mapping) or "type" not in config:
        raise DataError(f"data source: expected a mapping with a 'type' key, got {config!r}")
    source = sources.get(config["type"])
    options = {key: value for key, value in config.items() if key != "type"}
    try:
        parsed = source.Config.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise DataError(f"data source {config['type']!r}: {problems}") from None
    return source.load(parsed, seed, base_dir)


class Synthetic2D:
    """Base of the generated 2-D sets: ``n_samples`` points, ``classes`` (default 2) named
    "0", "1", ..."""

    @classmethod
    def facts(cls, config: Any, seed: int, base_dir: Any = None) -> SourceFacts:
        k = getattr(config, "classes", 2)
        return SourceFacts(config.n_samples, (2,), (), k, tuple(str(c) for c in range(k)))


@sources.register("blobs")
class Blobs(Synthetic2D):
    """Two Gaussian classes in 2-D: class 0 around (-1, 0), class 1 around (1, 0).

    x float32 [n_samples, 2], y int64 [n_samples] in {0, 1}; n_samples // 2 in class 0,
    the rest in class 1, in random order. Each coordinate has standard deviation
    ``sigma``. Deterministic in ``seed``.
    """

    class Config(spec.Config):
        n_samples: int = Field(400, ge=2)
        sigma: float = Field(0.5, gt=0)

    CENTRES = ((-1.0, 0.0), (1.0, 0.0))
    STREAM = 0x626C6F62  # 'blob': keeps this generator apart from shuffle's [seed, epoch]

    @classmethod
    def load(cls, config: "Blobs.Config", seed: int, base_dir: Any = None) -> SourceData:
        rng = np.random.default_rng([seed, cls.STREAM])
        n0 = config.n_samples // 2
        y = np.concatenate([np.zeros(n0, np.int64), np.ones(config.n_samples - n0, np.int64)])
        x = np.array(cls.CENTRES)[y] + config.sigma * rng.standard_normal((config.n_samples, 2))
        order = rng.permutation(config.n_samples)
        return SourceData(x[order], y[order], num_classes=2, feature_names=("x0", "x1"),
                          class_names=("0", "1"),
                          description=f"blobs: two Gaussian classes at (-1,0) and (1,0), "
                                      f"sigma {config.sigma}, {config.n_samples} samples, seed {seed}")


def _stream_state(seed: int, stream: int) -> int:
    """A 32-bit seed for scikit-learn's ``random_state``, from ``[seed, stream]``."""
    return int(np.random.default_rng([seed, stream]).integers(2**32 - 1))


@sources.register("moons")
class Moons(Synthetic2D):
    """Two interleaving half circles (scikit-learn's ``make_moons``): x float32
    [n_samples, 2], y int64 in {0, 1}; Gaussian ``noise`` (standard deviation) added to
    each coordinate. Deterministic in ``seed``."""

    class Config(spec.Config):
        n_samples: int = Field(400, ge=2)
        noise: float = Field(0.1, ge=0)

    STREAM = 0x6D6F6F6E  # 'moon'

    @classmethod
    def load(cls, config: "Moons.Config", seed: int, base_dir: Any = None) -> SourceData:
        from sklearn import datasets as skdatasets  # lazily: validate never loads it

        x, y = skdatasets.make_moons(config.n_samples, noise=config.noise,
                                     random_state=_stream_state(seed, cls.STREAM))
        return SourceData(x, y, num_classes=2, feature_names=("x0", "x1"), class_names=("0", "1"),
                          description=f"moons: scikit-learn make_moons, noise {config.noise}, "
                                      f"{config.n_samples} samples, seed {seed}")


@sources.register("circles")
class Circles(Synthetic2D):
    """A small circle (class 1) inside a large one (class 0), scikit-learn's
    ``make_circles``: x float32 [n_samples, 2]; ``factor`` is the ratio of the radii,
    ``noise`` the standard deviation added to each coordinate. Deterministic in ``seed``."""

    class Config(spec.Config):
        n_samples: int = Field(400, ge=2)
        noise: float = Field(0.05, ge=0)
        factor: float = Field(0.5, gt=0, lt=1)

    STREAM = 0x63697263  # 'circ'

    @classmethod
    def load(cls, config: "Circles.Config", seed: int, base_dir: Any = None) -> SourceData:
        from sklearn import datasets as skdatasets  # lazily: validate never loads it

        x, y = skdatasets.make_circles(config.n_samples, noise=config.noise, factor=config.factor,
                                       random_state=_stream_state(seed, cls.STREAM))
        return SourceData(x, y, num_classes=2, feature_names=("x0", "x1"), class_names=("0", "1"),
                          description=f"circles: scikit-learn make_circles, factor {config.factor}, "
                                      f"noise {config.noise}, {config.n_samples} samples, seed {seed}")


@sources.register("spirals")
class Spirals(Synthetic2D):
    """``classes`` interleaved spiral arms in 2-D: x float32 [n_samples, 2], y int64.

    A point of class k at t ~ U(0, 1) lies at radius t and angle
    ``2*pi*(turns*t + k/classes)``, plus Gaussian ``noise`` on each coordinate; classes
    get ``n_samples // classes`` points each (the first ones one more for a remainder),
    in random order. Deterministic in ``seed``.
    """

    class Config(spec.Config):
        n_samples: int = Field(600, ge=2)
        classes: int = Field(2, ge=2)
        turns: float = Field(1.0, gt=0)
        noise: float = Field(0.02, ge=0)

    STREAM = 0x73706972  # 'spir'

    @classmethod
    def load(cls, config: "Spirals.Config", seed: int, base_dir: Any = None) -> SourceData:
        rng = np.random.default_rng([seed, cls.STREAM])
        n, k = config.n_samples, config.classes
        y = np.sort(np.arange(n) % k)
        t = rng.random(n)
        angle = 2 * np.pi * (config.turns * t + y / k)
        x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
        x += config.noise * rng.standard_normal((n, 2))
        order = rng.permutation(n)
        return SourceData(x[order], y[order], num_classes=k, feature_names=("x0", "x1"),
                          class_names=tuple(str(c) for c in range(k)),
                          description=f"spirals: {k} arms, {config.turns} turns, noise "
                                      f"{config.noise}, {n} samples, seed {seed}")


class Bundled:
    """A data set bundled with scikit-learn (``loader`` names a ``sklearn.datasets.load_*``,
    imported only when the data are loaded: scikit-learn takes about a second to import)."""

    loader: str
    description: str
    shape: tuple[int, int]                # (samples, features), for describe
    classes: tuple[str, ...] | None       # class names, None for regression

    @classmethod
    def load(cls, config: spec.Config, seed: int, base_dir: Any = None) -> SourceData:
        """Load the whole set; ``seed`` and ``base_dir`` are unused (the data are fixed)."""
        from sklearn import datasets

        bunch = getattr(datasets, cls.loader)()
        names = getattr(bunch, "feature_names", None)
        if cls.classes is not None:
            classes = [str(c) for c in bunch.target_names]
            return SourceData(bunch.data, bunch.target, num_classes=len(classes),
                              feature_names=names, class_names=tuple(classes),
                              description=cls.description)
        return SourceData(bunch.data, bunch.target, num_classes=None,
                          feature_names=names, description=cls.description)

    @classmethod
    def facts(cls, config: spec.Config, seed: int, base_dir: Any = None) -> SourceFacts:
        """The set's size, shapes and classes from ``shape`` and ``classes``."""
        k = None if cls.classes is None else len(cls.classes)
        return SourceFacts(cls.shape[0], cls.shape[1:], (), k, cls.classes)

    @classmethod
    def describe(cls, config: spec.Config, seed: int, base_dir: Any = None) -> SourceData:
        """The set's shape, dtypes and classes without scikit-learn: zeros of its real
        shape (``shape``, float32), labels cycling through its ``classes`` (regression:
        zeros); a test checks these constants against :meth:`load`."""
        n = cls.shape[0]
        if cls.classes is None:
            return SourceData(np.zeros(cls.shape, np.float32), np.zeros(n, np.float32),
                              num_classes=None, description=cls.description)
        return SourceData(np.zeros(cls.shape, np.float32), np.arange(n) % len(cls.classes),
                          num_classes=len(cls.classes), class_names=cls.classes,
                          description=cls.description)


def describe_source(source: type, config: spec.Config, seed: int,
                    base_dir: str | os.PathLike | None = None) -> SourceData:
    """Data with the shapes, dtypes and classes ``source`` would load, as cheaply as it can
    give them: its ``describe`` classmethod where it has one (known constants, file
    headers), else its ``load``. For ``trainctl validate``, which must answer fast."""
    return getattr(source, "describe", source.load)(config, seed, base_dir)


@sources.register("digits")
class Digits(Bundled):
    """8x8 handwritten digits: x float32 [1797, 64] pixel counts 0..16, 10 classes."""

    class Config(spec.Config):
        """No options."""

    shape, classes = (1797, 64), tuple(str(c) for c in range(10))
    loader = "load_digits"
    description = ("scikit-learn load_digits: UCI Optical Recognition of Handwritten Digits "
                   "(test set, 1797 8x8 images, pixels 0..16)")


@sources.register("iris")
class Iris(Bundled):
    """Fisher's iris: x float32 [150, 4] (sepal/petal length/width, cm), 3 classes."""

    class Config(spec.Config):
        """No options."""

    shape, classes = (150, 4), ("setosa", "versicolor", "virginica")
    loader = "load_iris"
    description = "scikit-learn load_iris: Fisher (1936) iris, 150 samples, 4 features, 3 species"


@sources.register("wine")
class Wine(Bundled):
    """UCI wine recognition: x float32 [178, 13] chemical measurements, 3 cultivars."""

    class Config(spec.Config):
        """No options."""

    shape, classes = (178, 13), ("class_0", "class_1", "class_2")
    loader = "load_wine"
    description = "scikit-learn load_wine: UCI Wine recognition, 178 samples, 13 features, 3 classes"


@sources.register("breast_cancer")
class BreastCancer(Bundled):
    """Wisconsin diagnostic breast cancer: x float32 [569, 30], 2 classes (malignant, benign)."""

    class Config(spec.Config):
        """No options."""

    shape, classes = (569, 30), ("malignant", "benign")
    loader = "load_breast_cancer"
    description = ("scikit-learn load_breast_cancer: UCI Breast Cancer Wisconsin (Diagnostic), "
                   "569 samples, 30 features, 2 classes")


@sources.register("diabetes")
class Diabetes(Bundled):
    """Diabetes progression (regression): x float32 [442, 10] (scaled), y float32 [442]."""

    class Config(spec.Config):
        """No options."""

    shape, classes = (442, 10), None
    loader = "load_diabetes"
    description = "scikit-learn load_diabetes: Efron et al. (2004), 442 samples, 10 features, regression"
