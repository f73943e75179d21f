"""The spec's ``filter``, ``interleave`` and ``zip`` steps (tf.data's semantics).

They work on single ``(features, label)`` elements, so they come before the batching step
(the planner says so otherwise, with the step's file, line and key). Each names what it
needs; nothing of the spec is evaluated as code:

- ``filter``: ``predicate`` is a named predicate (:mod:`trainctl.data.predicates`);
- ``interleave``: the input elements are the classes 0..K-1, and the dataset made of
  class ``c`` is the pipeline so far filtered to label ``c``: tf.data's
  ``range(K).interleave(lambda c: ds.filter(label == c), cycle_length, block_length)``,
  a class-mixed order for data stored class by class;
- ``zip``: ``source`` is a second source, read whole and paired element by element with
  the section's own source (``Dataset.zip``, stopping with the shorter); the features are
  concatenated on their last axis and the label is this pipeline's (with ``labels: check``
  the other source's label must be the same, element by element).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from trainctl.data.lazy import numpy as np
from pydantic import Field

from trainctl import spec
from trainctl.data.dataset import Dataset
from trainctl.data.predicates import predicates
from trainctl.data.sources import sources
from trainctl.data.spec_steps import Context, ParallelCalls, SpecStep, parallel_calls, pipeline_steps
from trainctl.errors import DataError


def where(ctx: Context) -> str:
    """``data.train.steps[2]`` for the step being built."""
    text = ".".join(str(p) for p in ctx.path[:3])
    return text + "".join(f"[{p}]" for p in ctx.path[3:])


class ElementStep(SpecStep):
    """A step on single elements: it must come before the batching step.

    ``nested``: (option key, registry) of the named thing the step's option holds
    (a predicate, a source), validated by the planner like a step."""

    element_only = True
    nested: tuple[str, Any] | None = None


@pipeline_steps.register("filter")
class FilterStep(ElementStep):
    """``predicate`` (``NAME`` or ``{type: NAME, ...}``): label_in, compare, finite."""

    nested = ("predicate", predicates)

    class Config(spec.Config):
        predicate: Union[str, dict[str, Any]]

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context, nested: tuple | None = None) -> Dataset:
        assert nested is not None, "the planner validates the predicate first"
        predicate = nested[0](nested[1], ctx.class_names, where(ctx))
        predicate.check(ds.element_spec)
        return ds.filter(predicate)


class _OfClass:
    """interleave's map_func: class ``c`` → the pipeline's elements of label ``c``."""

    def __init__(self, ds: Dataset):
        self.ds = ds

    def __call__(self, c: Any) -> Dataset:
        return self.ds.filter(_LabelIs(int(c)))


class _LabelIs:
    def __init__(self, c: int):
        self.c = c

    def describe(self) -> str:
        return f"label_is({self.c})"

    def __call__(self, features: Any, label: Any = None) -> bool:
        return bool(np.asarray(label) == self.c)


@pipeline_steps.register("interleave")
class InterleaveStep(ElementStep):
    """``by: label``; ``cycle_length`` (the number of classes), ``block_length`` (1),
    ``num_parallel_calls`` (none; > 0 or ``autotune``: threads producing the open
    datasets ahead)."""

    class Config(spec.Config):
        by: Literal["label"] = "label"
        cycle_length: Optional[int] = Field(None, gt=0)
        block_length: int = Field(1, gt=0)
        num_parallel_calls: ParallelCalls = None

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context) -> Dataset:
        k = ctx.num_classes
        if k is None:
            raise DataError(f"{where(ctx)}: interleave by label needs class labels; this "
                            "source's labels are regression targets")
        return Dataset.range(k).interleave(_OfClass(ds), config.cycle_length or k,
                                           config.block_length,
                                           parallel_calls(config.num_parallel_calls))


class _Joined:
    """zip's combining map: ((x, y), (x2, y2)) → (concatenate([x, x2], -1), y)."""

    def __init__(self, check: bool, at: str):
        self.check, self.at = check, at

    def describe(self) -> str:
        return f"join_features(check_labels={self.check})"

    def __call__(self, mine: tuple, other: tuple) -> tuple:
        (x, y), (x2, y2) = mine, other
        x, x2 = np.asarray(x), np.asarray(x2)
        if x.dtype.kind in "USO" or x2.dtype.kind in "USO":
            raise DataError(f"{self.at}: zip concatenates numeric features; got {x.dtype} and {x2.dtype}")
        if self.check and not np.array_equal(np.asarray(y), np.asarray(y2)):
            raise DataError(f"{self.at}: zip: the labels differ ({np.asarray(y).item()!r} here, "
                            f"{np.asarray(y2).item()!r} in the zipped source); the sources are "
                            "not aligned row by row (or set labels: ignore)")
        if x.shape[:-1] != x2.shape[:-1] or x.ndim == 0 or x2.ndim == 0:
            raise DataError(f"{self.at}: zip: features of shapes {list(x.shape)} and "
                            f"{list(x2.shape)} cannot be joined on their last axis")
        return np.concatenate([x, x2.astype(x.dtype, copy=False)], axis=-1), y


@pipeline_steps.register("zip")
class ZipStep(ElementStep):
    """``source`` (a source, read whole, not split); ``labels`` (``check``: the two
    sources' labels must agree element by element; ``ignore``)."""

    nested = ("source", sources)
    needs_own_source = True

    class Config(spec.Config):
        source: dict[str, Any]
        labels: Literal["check", "ignore"] = "check"

    @classmethod
    def build(cls, ds: Dataset, config: Any, ctx: Context, nested: tuple | None = None) -> Dataset:
        assert nested is not None, "the planner validates the source first"
        other = nested[0].load(nested[1], ctx.seed, ctx.base_dir)
        paired = Dataset.zip((ds, Dataset.from_tensor_slices((other.x, other.y))))
        return paired.map(_Joined(config.labels == "check", where(ctx)))
