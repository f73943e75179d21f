"""Train / validation / test splits of a source, as batched Datasets."""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset, check_int
from trainctl.data.preprocess import Preprocessing
from trainctl.data.sources import SourceData
from trainctl.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Stats:
    """Per-feature standardisation statistics of the training split.

    ``mean`` and ``std`` are float32 arrays of one element's feature shape; a feature with
    standard deviation 0 has ``std`` 1, so it is only centred.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> "Stats":
        """Statistics of ``x`` [N, ...] over its first axis (population std, in float64)."""
        x64 = np.asarray(x, dtype=np.float64)
        std = x64.std(axis=0)
        std[std == 0] = 1.0
        return cls(x64.mean(axis=0).astype(np.float32), std.astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` as float32; ``x`` is [N, *feature_shape]."""
        return ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)


@dataclass(frozen=True)
class Splits:
    """The three splits of a source, each yielding ``(x float32 [B, ...], y [B])`` batches.

    ``input_shape`` is one element's feature shape, ``sizes`` the number of samples per
    split (keys train, validation, test), ``stats`` the standardisation applied (or None),
    ``source_name`` the spec type of the source (for messages), ``class_names`` the
    source's names of the classes (or None), ``preprocessing`` the fitted feature
    transforms the test split applies to raw features (stored with checkpoints; see
    :mod:`trainctl.data.preprocess`).
    """

    train: Dataset
    validation: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int | None
    sizes: dict[str, int]
    stats: Stats | None
    source_name: str = ""
    class_names: tuple[str, ...] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)


def build_splits(source_data: SourceData, validation: float = 0.1, test: float = 0.2,
                 seed: int = 0, batch_size: int = 32, shuffle: bool = True,
                 drop_remainder: bool = False, standardize: bool = False,
                 eval_batch_size: int = 256, stratify: bool = True,
                 source_name: str = "", shard: tuple[int, int] | None = None) -> Splits:
    """Split ``source_data`` into seeded train/validation/test Datasets.

    A split with fraction f > 0 gets ``max(1, round(f * N))`` samples, f = 0 an empty
    dataset; train gets the rest. For classification the split is stratified by class
    (unless ``stratify`` is false, or the labels are not one per sample). The train dataset is shuffled each epoch from
    ``seed`` (when ``shuffle``) and batched by ``batch_size`` with ``drop_remainder``;
    validation and test keep the source order and are batched by ``eval_batch_size``,
    never dropping. ``shard`` ``(num_shards, index)``: the train dataset is this replica's
    part of each (shuffled) epoch, :func:`replica_shard`, before batching. With ``standardize``, features are scaled by the train split's
    per-feature mean and std (:class:`Stats`), the same for all three splits.

    Raises DataError when a fraction is outside [0, 1), the fractions leave no training
    sample (or, with ``drop_remainder``, no training batch), a batch size or the seed is
    invalid, or a stratified split is impossible (e.g. fewer test samples than classes).
    """
    check_int("build_splits", "seed", seed, minimum=0)
    check_int("build_splits", "batch_size", batch_size, minimum=1)
    check_int("build_splits", "eval_batch_size", eval_batch_size, minimum=1)
    sizes = _split_sizes(len(source_data), validation, test)
    if drop_remainder and sizes["train"] < batch_size:
        raise DataError(f"build_splits: batch_size {batch_size} with drop_remainder leaves no "
                        f"training batch from {sizes['train']} training samples")
    labels = source_data.y if source_data.num_classes is not None and stratify \
        and source_data.y.ndim == 1 else None  # labels per position: not stratified
    index = _split_indices(len(source_data), sizes, labels, seed)

    x, y = source_data.x, source_data.y
    stats = Stats.of(x[index["train"]]) if standardize else None
    parts = {name: (stats.apply(x[i]) if stats else x[i], y[i]) for name, i in index.items()}

    train = Dataset.from_tensor_slices(parts["train"])
    if shuffle:
        train = train.shuffle(sizes["train"], seed=seed)
    if shard is not None:
        train = replica_shard(train, *shard)
    return Splits(
        train=train.batch(batch_size, drop_remainder=drop_remainder),
        validation=Dataset.from_tensor_slices(parts["validation"]).batch(eval_batch_size),
        test=Dataset.from_tensor_slices(parts["test"]).batch(eval_batch_size),
        input_shape=tuple(int(d) for d in x.shape[1:]),
        num_classes=source_data.num_classes,
        sizes=sizes,
        stats=stats,
        source_name=source_name,
        class_names=source_data.class_names,
        preprocessing=Preprocessing.standardized(stats.mean, stats.std) if stats else Preprocessing(),
    )


def replica_shard(ds: Dataset, num_shards: int, index: int) -> Dataset:
    """Replica ``index``'s part of each epoch of ``ds`` for data-parallel training.

    Every replica iterates the same (seeded) order and keeps elements ``index, index +
    num_shards, ...``; a finite epoch is first cut to a multiple of ``num_shards`` (the
    last ``len % num_shards`` elements of the epoch's order are skipped, as
    torch's DistributedSampler with drop_last), so every replica gets as many elements,
    hence as many batches of the same sizes, and the replicas together cover the rest.
    Raises DataError for a bad ``num_shards``/``index`` and when the epoch has fewer
    elements than replicas.
    """
    n = ds.cardinality()
    if n >= 0:
        if n < num_shards:
            raise DataError(f"shard: {n} training elements cannot be shared by {num_shards} "
                            f"replicas")
        ds = ds.take(n - n % num_shards)
    return ds.shard(num_shards, index)


def _split_sizes(n: int, validation: float, test: float) -> dict[str, int]:
    """Sample counts per split for ``n`` samples; DataError when train would be empty."""
    for name, fraction in (("validation", validation), ("test", test)):
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 <= fraction < 1:
            raise DataError(f"build_splits: {name} must be a fraction in [0, 1), got {fraction!r}")
    if n == 0:
        raise DataError("build_splits: the source has no samples")
    counts = {name: 0 if f == 0 else max(1, round(f * n))
              for name, f in (("validation", validation), ("test", test))}
    n_train = n - counts["validation"] - counts["test"]
    if n_train < 1:
        raise DataError(f"build_splits: validation {validation} + test {test} of {n} samples "
                        f"({counts['validation']} + {counts['test']}) leaves no training data")
    return {"train": n_train, **counts}


def _split_indices(n: int, sizes: dict[str, int], labels: np.ndarray | None,
                   seed: int) -> dict[str, np.ndarray]:
    """Disjoint sorted index arrays covering range(n), stratified by ``labels`` if given."""
    from sklearn.model_selection import train_test_split  # about a second: only when splitting

    rest = np.arange(n)
    out: dict[str, np.ndarray] = {}
    for name in ("test", "validation"):
        if sizes[name] == 0:
            out[name] = rest[:0]
            continue
        strata = None if labels is None else labels[rest]
        try:
            rest, taken = train_test_split(rest, test_size=sizes[name], random_state=seed,
                                           stratify=strata)
        except ValueError as exc:
            raise DataError(f"build_splits: cannot give the {name} split {sizes[name]} of "
                            f"{len(rest)} samples stratified by class ({exc}); use more data, "
                            "larger fractions or stratify: false") from None
        out[name] = np.sort(taken)
    out["train"] = np.sort(rest)
    return {name: out[name] for name in SPLITS}
