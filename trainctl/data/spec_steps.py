"""The pipeline steps a spec's ``data.<split>.steps`` list can name.

Each is a class registered in :data:`pipeline_steps` with a ``Config`` (its YAML options)
and ``build(dataset, config, context) -> Dataset``. Every map transform of
:mod:`trainctl.data.transforms` is a step too: ``{type: standardize}`` is
``{type: map, transform: {type: standardize}}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from trainctl.data.lazy import numpy as np
from pydantic import BeforeValidator, Field

from trainctl import spec
from trainctl.data.dataset import AUTOTUNE, Dataset
from trainctl.data.transforms import Transform, transforms
from trainctl.spec.messages import show
from trainctl.registry import Registry

pipeline_steps: Registry[type] = Registry("pipeline step")


def _check_parallel_calls(value: Any) -> Any:
    """Accept null, an integer > 0 or ``'autotune'``; else one error listing them."""
    if value is None or value == "autotune" or (
            isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"expected an integer > 0 or 'autotune', got {show(value)}")


#: A spec step's ``num_parallel_calls``: a thread count > 0, ``autotune`` (tf.data's
#: AUTOTUNE: one thread per CPU) or null (in the caller); see :func:`parallel_calls`.
ParallelCalls = Annotated[Optional[Union[Annotated[int, Field(gt=0)], Literal["autotune"]]],
                          BeforeValidator(_check_parallel_calls)]


def parallel_calls(value: int | str | None) -> int | None:
    """The ``num_parallel_calls`` of :meth:`Dataset.map` for a spec's value: ``'autotune'``
    → :data:`AUTOTUNE` (-1), else unchanged."""
    return AUTOTUNE if value == "autotune" else value


@dataclass
class Context:
    """What a step needs to know while a split's pipeline is built.

    ``seed``: the spec's seed; ``base_dir``: the spec's folder; ``path``: the step's key
    path (``("data", "train", "steps", 2)``); ``fitted``: the train split's fitted
    transforms by (name, occurrence), filled while the train pipeline is built and read
    by the others; ``num_classes`` and ``class_names`` of the source; ``is_train``;
    ``batched``: a batching step came before.
    """

    seed: int
    base_dir: Path
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    is_train: bool = True
    path: tuple = ()
    batched: bool = False
    fitted: dict[tuple[str, int], Transform] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def step_seed(self) -> int:
        """A seed for the random step at ``path``, from the spec seed and the path."""
        text = repr((self.seed, self.path)).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


class SpecStep:
    """Base of spec steps; ``batching`` steps end a pipeline's element stage."""

    batching = False

    class Config(spec.Config):
        """No options."""

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        raise NotImplementedError


@pipeline_steps.register("shuffle")
class ShuffleStep(SpecStep):
    """``buffer_size`` (default: the whole split, a uniform permutation); ``seed``
    (default: the spec's seed); ``reshuffle_each_iteration`` (true)."""

    class Config(spec.Config):
        buffer_size: Optional[int] = Field(None, gt=0)
        seed: Optional[int] = Field(None, ge=0, lt=2**63)
        reshuffle_each_iteration: bool = True

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        size = config.buffer_size or max(1, ds.cardinality())
        seed = ctx.seed if config.seed is None else config.seed
        return ds.shuffle(size, seed=seed, reshuffle_each_iteration=config.reshuffle_each_iteration)


@pipeline_steps.register("batch")
class BatchStep(SpecStep):
    batching = True

    class Config(spec.Config):
        batch_size: int = Field(gt=0)
        drop_remainder: bool = False

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.batch(config.batch_size, config.drop_remainder)


@pipeline_steps.register("padded_batch")
class PaddedBatchStep(SpecStep):
    """Pads the features (and the label) of each batch to the largest in the batch, with
    ``padding_value`` (0)."""

    batching = True

    class Config(spec.Config):
        batch_size: int = Field(gt=0)
        padding_value: Union[int, float, str] = 0
        drop_remainder: bool = False

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.padded_batch(config.batch_size, padding_values=config.padding_value,
                               drop_remainder=config.drop_remainder)


@pipeline_steps.register("unbatch")
class UnbatchStep(SpecStep):
    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.unbatch()


def _count(positive: bool):
    return Field(gt=0) if positive else Field(ge=0)


@pipeline_steps.register("repeat")
class RepeatStep(SpecStep):
    """``count`` (> 0; an epoch must end, so there is no endless repeat in a spec)."""

    class Config(spec.Config):
        count: int = _count(True)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.repeat(config.count)


@pipeline_steps.register("take")
class TakeStep(SpecStep):
    class Config(spec.Config):
        count: int = _count(False)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.take(config.count)


@pipeline_steps.register("skip")
class SkipStep(SpecStep):
    class Config(spec.Config):
        count: int = _count(False)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.skip(config.count)


@pipeline_steps.register("shard")
class ShardStep(SpecStep):
    class Config(spec.Config):
        num_shards: int = Field(gt=0)
        index: int = Field(ge=0)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.shard(config.num_shards, config.index)


@pipeline_steps.register("cache")
class CacheStep(SpecStep):
    """``filename`` (relative to the spec's folder; none: in memory)."""

    PATHS = ("filename",)

    class Config(spec.Config):
        filename: Optional[str] = Field(None, min_length=1)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.cache(str(ctx.base_dir / config.filename) if config.filename else "")


@pipeline_steps.register("prefetch")
class PrefetchStep(SpecStep):
    class Config(spec.Config):
        buffer_size: int = Field(2, gt=0)

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        return ds.prefetch(config.buffer_size)


@pipeline_steps.register("map")
class MapStep(SpecStep):
    """``transform`` (a named transform, ``{type: NAME, ...}``) and ``num_parallel_calls``
    (threads > 0, ``autotune``: one per CPU; none: in the caller)."""

    class Config(spec.Config):
        transform: Union[str, dict[str, Any]]
        num_parallel_calls: ParallelCalls = None

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context,
              transform: tuple[type[Transform], Any] | None = None) -> Dataset:
        """``transform`` is the validated ``(Transform class, Config)`` of ``config.transform``."""
        assert transform is not None, "the planner validates map's transform first"
        return apply_transform(ds, transform[0], transform[1], ctx,
                               parallel_calls(config.num_parallel_calls))


def apply_transform(ds: Dataset, cls: type[Transform], config: Any, ctx: Context,
                    num_parallel_calls: int | None = None) -> Dataset:
    """``ds.map(cls(config))``, fitted on ``ds`` (train) or taken fitted from train."""
    name = cls.registered_name
    transform = cls(config, seed=ctx.step_seed())
    if transform.needs_fit:
        occurrence = ctx.counts.get(name, 0)    # the k-th fitted `name` of a split
        ctx.counts[name] = occurrence + 1
        if ctx.is_train:
            values = _component(ds, config.on, ctx.batched) if name != "one_hot" else None
            transform.fit(values, ctx.num_classes)
            ctx.fitted[(name, occurrence)] = transform
        else:
            transform = ctx.fitted[(name, occurrence)]
    return ds.map(transform, num_parallel_calls)


def _component(ds: Dataset, on: str, batched: bool) -> np.ndarray:
    """The ``on`` component of every element of epoch 0 of ``ds``, as one array [N, ...]
    (batches concatenated when ``batched``)."""
    root = ds._index_root()
    if root is not None:                  # gather the whole epoch at once
        order = list(ds._index_order((0,)))
        element = root._gather(np.concatenate(order) if order else np.zeros(0, np.int64))
        return np.asarray(element[1 if on == "label" else 0] if isinstance(element, tuple) else element)
    values = []
    for element in ds.iterate(0):
        value = element[1 if on == "label" else 0] if isinstance(element, tuple) else element
        values.append(np.asarray(value))
    if not values:
        return np.zeros((0,))
    return np.concatenate(values) if batched else np.stack(values)


def transform_step(cls: type[Transform]) -> type[SpecStep]:
    """The spec step applying transform ``cls`` in the caller (``{type: NAME, ...}``)."""

    class TransformStep(SpecStep):
        Config = cls.Config
        transform = cls

        @classmethod
        def build(cls_, ds: Dataset, config: Any, ctx: Context) -> Dataset:
            return apply_transform(ds, cls, config, ctx)

    TransformStep.__name__ = f"{cls.__name__}Step"
    TransformStep.__doc__ = cls.__doc__
    return TransformStep


for _name, _cls in transforms.items():
    pipeline_steps.register(_name)(transform_step(_cls))
