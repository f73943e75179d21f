"""A tf.data-like input pipeline over numpy arrays.

A :class:`Dataset` is a chain of small steps: a source (:meth:`Dataset.from_tensor_slices`,
:meth:`Dataset.from_generator`, :meth:`Dataset.range`, ...) followed by transformations
(``map``, ``filter``, ``shuffle``, ``batch``, ...), each a class registered in
:data:`transformations` under its tf.data name. A new step is one registered class;
:meth:`Dataset.apply` reaches it by name (as a spec does) and a one-line method gives it
the chained form.

Elements are structures of numpy arrays (see :mod:`trainctl.data.structure`), e.g.
``(features float32 [64], label int64 [])``; nothing here imports torch (only
``prefetch_to_device`` does, lazily).

Determinism: every iteration is made for an *epoch*. ``iter(ds)`` uses the dataset's
epoch counter (0, 1, 2, ... one per call); ``ds.iterate(epoch=k)`` asks for epoch k
directly, without replaying earlier epochs, and always gives the same elements in the
same order. Steps receive a *key*, ``(epoch,)`` at the top and ``(epoch, r)`` inside the
r-th repetition of ``repeat``; random steps seed ``numpy.random.default_rng([seed, *key])``
(random map transforms add the element's index). Every step also receives ``start``, the
number of leading elements to leave out, which is how an iterator resumes from its saved
state (:mod:`trainctl.data.iterator`); steps that can, skip without computing them.

Fast path: ``from_tensor_slices`` or ``range`` followed by ``shuffle``/``take``/``skip``/
``shard``/``repeat`` is *indexable*: those steps compute the epoch's order as index arrays
(``_index_order``) and ``batch`` gathers each batch with one fancy-indexing call per
array instead of stacking single elements.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.errors import DataError
from trainctl.registry import Registry

UNKNOWN_CARDINALITY = -1
INFINITE_CARDINALITY = -2
AUTOTUNE = -1

#: name → Dataset subclass taking ``(input, *args, **kwargs)``; names are tf.data's.
transformations: Registry[type["Dataset"]] = Registry("dataset transformation")

Key = tuple[int, ...]


class Dataset:
    """A re-iterable, deterministic sequence of elements (structures of numpy arrays).

    Subclasses implement ``_iterate(key, start)``, ``_cardinality()`` and
    ``_element_spec()``; indexable ones also ``_index_root()`` and ``_index_order(key)``.
    """

    def __init__(self) -> None:
        self._epoch = 0
        self._spec: Any = None

    # -- what a step implements ------------------------------------------------------
    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        """The elements of iteration ``key`` from index ``start`` on."""
        raise NotImplementedError

    def _cardinality(self) -> int:
        raise NotImplementedError

    def _element_spec(self) -> Any:
        raise NotImplementedError

    def _inputs(self) -> tuple["Dataset", ...]:
        """The datasets this one reads (for pipeline descriptions and benchmarks)."""
        return ()

    def _params(self) -> dict[str, Any]:
        """JSON-able parameters that fix this step's output order (for the iterator state)."""
        return {}

    def _seeds(self) -> dict[str, Any]:
        """This step's random seeds (for the iterator state); empty for a deterministic step."""
        return {}

    def _index_root(self) -> "Dataset | None":
        """The indexable source this step's order is computed on, or None."""
        return None

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        """int64 index arrays into ``_index_root()`` whose concatenation is the epoch's order."""
        raise NotImplementedError

    # -- iteration -------------------------------------------------------------------
    def __iter__(self):
        """Iterate the next epoch of this dataset's counter (0 on the first call)."""
        return self.iterator()

    def iterator(self, epoch: int | None = None, position: int = 0):
        """A :class:`~trainctl.data.iterator.DatasetIterator` over epoch ``epoch`` from
        element ``position`` on (skipping, without computing them where the steps allow,
        the elements before it).

        ``epoch=None`` takes the dataset's counter and advances it (what ``iter()`` does).
        The iterator's ``state()`` can be saved and resumed with :meth:`iterator_from_state`.
        """
        from trainctl.data.iterator import DatasetIterator

        if epoch is None:
            epoch = self._epoch
            self._epoch += 1
        check_int("iterator", "epoch", epoch, minimum=0)
        check_int("iterator", "position", position, minimum=0)
        return DatasetIterator(self, int(epoch), int(position))

    def iterate(self, epoch: int = 0, position: int = 0):
        """Iterate epoch ``epoch`` (int >= 0) from element ``position``; the same epoch
        always gives the same elements.

        Does not move the counter used by ``iter()``. Raises DataError for a bad epoch.
        """
        check_int("iterate", "epoch", epoch, minimum=0)
        return self.iterator(int(epoch), position)

    def iterator_from_state(self, state: dict[str, Any]):
        """An iterator resuming where the one that gave ``state`` (its ``state()``) stood.

        It yields exactly the elements the saved iterator had still to yield. Raises
        DataError when ``state`` is malformed or was saved from a pipeline with other
        steps, parameters or seeds.
        """
        from trainctl.data.iterator import restore

        return restore(self, state)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` will use; settable, e.g. when resuming a run."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        check_int("epoch", "epoch", value, minimum=0)
        self._epoch = int(value)

    def cardinality(self) -> int:
        """Number of elements; UNKNOWN_CARDINALITY (-1) or INFINITE_CARDINALITY (-2)."""
        return self._cardinality()

    def __len__(self) -> int:
        n = self._cardinality()
        if n < 0:
            kind = "infinite" if n == INFINITE_CARDINALITY else "unknown"
            raise TypeError(f"the length of this dataset is {kind}")
        return n

    @property
    def element_spec(self) -> Any:
        """Structure of TensorSpec (shape, dtype) describing one element."""
        if self._spec is None:
            self._spec = self._element_spec()
        return self._spec

    @property
    def name(self) -> str:
        """The step's registered name (``from_tensor_slices`` etc. for sources)."""
        return getattr(type(self), "registered_name", type(self).__name__)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} cardinality={self.cardinality()}>"

    # -- sources ---------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors: Any) -> "Dataset":
        """Dataset of the slices of ``tensors`` along their first axis.

        ``tensors`` is an array (a list counts as one array), a tuple of arrays or a dict
        of arrays (nesting allowed); element i is the same structure holding ``a[i]`` of
        each array ``a``. Arrays are not copied (a memory-mapped array stays on disk).
        Raises DataError when a component is a scalar or the first-axis lengths differ.
        """
        from trainctl.data.origins import TensorSlices

        return TensorSlices(tensors)

    @staticmethod
    def from_tensors(tensors: Any) -> "Dataset":
        """Dataset of one element, ``tensors`` itself (a structure of arrays)."""
        from trainctl.data.origins import FromTensors

        return FromTensors(tensors)

    @staticmethod
    def range(*args: int) -> "Dataset":
        """Dataset of int64 0-d arrays, with Python ``range(stop)``/``range(start, stop[, step])``."""
        from trainctl.data.origins import Range

        return Range(*args)

    @staticmethod
    def from_generator(generator: Callable[[], Iterable[Any]], output_signature: Any) -> "Dataset":
        """Dataset of what ``generator()`` yields, called anew for every iteration.

        ``output_signature`` is a structure of TensorSpec; each element is converted to it
        (dtype cast, ``None`` dimensions free) and DataError names the element index of
        one that does not fit. Cardinality is unknown. Resuming from a saved state
        re-runs the generator and skips the elements already seen.
        """
        from trainctl.data.origins import FromGenerator

        return FromGenerator(generator, output_signature)

    @staticmethod
    def zip(*datasets: Any) -> "Dataset":
        """Elements combining one element of each dataset: ``zip(a, b)`` gives ``(ea, eb)``.

        Also takes one tuple or dict of datasets (``zip({"x": a, "y": b})``). Stops with
        the shortest dataset.
        """
        from trainctl.data.origins import Zip

        return Zip(datasets[0] if len(datasets) == 1 else datasets)

    # -- transformations -------------------------------------------------------------
    def apply(self, name: str, *args: Any, **kwargs: Any) -> "Dataset":
        """Apply the transformation registered as ``name`` (UnknownNameError if none)."""
        return transformations.get(name)(self, *args, **kwargs)

    def map(self, fn: Callable[..., Any], num_parallel_calls: int | None = None) -> "Dataset":
        """Apply ``fn`` to each element (a tuple element is unpacked into arguments).

        ``num_parallel_calls`` (None: in the caller; AUTOTUNE: one per CPU) runs ``fn``
        in that many threads, keeping the order. See :class:`~trainctl.data.parallel.Map`.
        """
        return self.apply("map", fn, num_parallel_calls)

    def filter(self, predicate: Callable[..., Any]) -> "Dataset":
        """Keep the elements for which ``predicate`` (unpacked like ``map``) is true."""
        return self.apply("filter", predicate)

    def shuffle(self, buffer_size: int, seed: int | None = None,
                reshuffle_each_iteration: bool = True) -> "Dataset":
        """Shuffle through a buffer of ``buffer_size`` elements (see Shuffle for semantics)."""
        return self.apply("shuffle", buffer_size, seed, reshuffle_each_iteration)

    def batch(self, batch_size: int, drop_remainder: bool = False) -> "Dataset":
        """Stack consecutive elements into batches; the last batch is short unless dropped."""
        return self.apply("batch", batch_size, drop_remainder)

    def padded_batch(self, batch_size: int, padded_shapes: Any = None, padding_values: Any = None,
                     drop_remainder: bool = False) -> "Dataset":
        """Batch elements of different shapes, padding each leaf (see PaddedBatch)."""
        return self.apply("padded_batch", batch_size, padded_shapes, padding_values, drop_remainder)

    def unbatch(self) -> "Dataset":
        """Split each element along its first axis into that many elements."""
        return self.apply("unbatch")

    def take(self, count: int) -> "Dataset":
        """The first ``count`` elements (all of them when ``count`` is -1)."""
        return self.apply("take", count)

    def skip(self, count: int) -> "Dataset":
        """All but the first ``count`` elements (none when ``count`` is -1)."""
        return self.apply("skip", count)

    def repeat(self, count: int | None = None) -> "Dataset":
        """Repeat ``count`` times (forever when None or -1)."""
        return self.apply("repeat", count)

    def shard(self, num_shards: int, index: int) -> "Dataset":
        """Every ``num_shards``-th element, starting at element ``index``."""
        return self.apply("shard", num_shards, index)

    def cache(self, filename: str = "") -> "Dataset":
        """Keep the elements of the first complete iteration, in memory or in ``filename``."""
        return self.apply("cache", filename)

    def interleave(self, map_func: Callable[..., "Dataset"], cycle_length: int = AUTOTUNE,
                   block_length: int = 1, num_parallel_calls: int | None = None) -> "Dataset":
        """Interleave the datasets ``map_func`` makes of each element (see Interleave)."""
        return self.apply("interleave", map_func, cycle_length, block_length, num_parallel_calls)

    def prefetch(self, buffer_size: int = AUTOTUNE) -> "Dataset":
        """Produce up to ``buffer_size`` elements ahead in a background thread."""
        return self.apply("prefetch", buffer_size)

    def prefetch_to_device(self, device: Any, buffer_size: int = 2) -> "Dataset":
        """Elements as torch tensors on ``device``, copied ahead in a background thread."""
        return self.apply("prefetch_to_device", device, buffer_size)


def check_int(op: str, name: str, value: Any, minimum: int | None = None) -> None:
    """Raise DataError unless ``value`` is an int (not a bool), >= ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{op}: {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataError(f"{op}: {name} must be >= {minimum}, got {value}")


def check_bool(op: str, name: str, value: Any) -> bool:
    """``value`` as a bool; DataError unless it is one."""
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{op}: {name} must be true or false, got {value!r}")
    return bool(value)


def where(key: Key) -> str:
    """`` (epoch E)`` or `` (epoch E, repetition R, ...)`` for messages."""
    if len(key) == 1:
        return f" (epoch {key[0]})"
    return f" (epoch {key[0]}, repetition {', '.join(str(k) for k in key[1:])})"


def drop_indices(chunks: Iterable[np.ndarray], count: int) -> Iterator[np.ndarray]:
    """The index chunks without their first ``count`` indices overall."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0


def iterate_indexed(ds: Dataset, key: Key, start: int) -> Iterator[Any]:
    """Elements of an indexable ``ds`` one by one, in its index order, from ``start``."""
    root = ds._index_root()
    assert root is not None
    for chunk in drop_indices(ds._index_order(key), start):
        for i in chunk.tolist():
            yield root._element(i)
