"""A tf.data-like input pipeline over numpy arrays.

A :class:`Dataset` is a chain of small steps: a source (:meth:`Dataset.from_tensor_slices`,
:meth:`Dataset.range`) followed by transformations (``map``, ``filter``, ``shuffle``,
``batch``, ``take``, ``skip``, ``repeat``, ``prefetch``), each a class in
:mod:`trainctl.data.steps` registered in :data:`transformations` under its
tf.data name. A new step is one registered class; :meth:`Dataset.apply` reaches it by
name (as a spec does) and a one-line method gives it the chained form.

Elements are structures of numpy arrays (see :mod:`trainctl.data.structure`), e.g.
``(features float32 [64], label int64 [])``; nothing here imports torch.

Determinism: every iteration is made for an *epoch*. ``iter(ds)`` uses the dataset's
epoch counter (0, 1, 2, ... one per call); ``ds.iterate(epoch=k)`` asks for epoch k
directly, without replaying earlier epochs, and always gives the same elements in the
same order. Steps receive a *key*, ``(epoch,)`` at the top and ``(epoch, r)`` inside the
r-th repetition of ``repeat``; random steps seed ``numpy.random.default_rng([seed, *key])``.
"""

from __future__ import annotations

import builtins
from typing import Any, Callable, Iterator

import numpy as np

from trainctl.data.structure import TensorSpec, flatten_with_paths, map_structure, to_arrays
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

    Subclasses implement ``_iterate(key)``, ``_cardinality()`` and ``_element_spec()``.
    """

    def __init__(self) -> None:
        self._epoch = 0
        self._spec: Any = None

    # -- what a step implements ------------------------------------------------------
    def _iterate(self, key: Key) -> Iterator[Any]:
        raise NotImplementedError

    def _cardinality(self) -> int:
        raise NotImplementedError

    def _element_spec(self) -> Any:
        raise NotImplementedError

    # -- iteration -------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        """Iterate the next epoch of this dataset's counter (0 on the first call)."""
        epoch = self._epoch
        self._epoch += 1
        return self.iterate(epoch)

    def iterate(self, epoch: int = 0) -> Iterator[Any]:
        """Iterate epoch ``epoch`` (int >= 0); the same epoch always gives the same elements.

        Does not move the counter used by ``iter()``. Raises DataError for a bad epoch.
        """
        check_int("iterate", "epoch", epoch, minimum=0)
        return self._iterate((int(epoch),))

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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} cardinality={self.cardinality()}>"

    # -- sources ---------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors: Any) -> "Dataset":
        """Dataset of the slices of ``tensors`` along their first axis.

        ``tensors`` is an array (a list counts as one array), a tuple of arrays or a dict
        of arrays (nesting allowed); element i is the same structure holding ``a[i]`` of
        each array ``a``. Raises DataError when a component is a scalar or the first-axis
        lengths differ (the message names each component's length).
        """
        return TensorSlices(tensors)

    @staticmethod
    def range(*args: int) -> "Dataset":
        """Dataset of int64 0-d arrays, with Python ``range(stop)``/``range(start, stop[, step])``."""
        return Range(*args)

    # -- transformations -------------------------------------------------------------
    def apply(self, name: str, *args: Any, **kwargs: Any) -> "Dataset":
        """Apply the transformation registered as ``name`` (UnknownNameError if none)."""
        return transformations.get(name)(self, *args, **kwargs)

    def map(self, fn: Callable[..., Any]) -> "Dataset":
        """Apply ``fn`` to each element (a tuple element is unpacked into arguments)."""
        return self.apply("map", fn)

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

    def take(self, count: int) -> "Dataset":
        """The first ``count`` elements (all of them when ``count`` is -1)."""
        return self.apply("take", count)

    def skip(self, count: int) -> "Dataset":
        """All but the first ``count`` elements (none when ``count`` is -1)."""
        return self.apply("skip", count)

    def repeat(self, count: int | None = None) -> "Dataset":
        """Repeat ``count`` times (forever when None or -1)."""
        return self.apply("repeat", count)

    def prefetch(self, buffer_size: int = AUTOTUNE) -> "Dataset":
        """Produce up to ``buffer_size`` elements ahead in a background thread."""
        return self.apply("prefetch", buffer_size)


def check_int(op: str, name: str, value: Any, minimum: int | None = None) -> None:
    """Raise DataError unless ``value`` is an int (not a bool), >= ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"{op}: {name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataError(f"{op}: {name} must be >= {minimum}, got {value}")


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class TensorSlices(Dataset):
    """Source step of :meth:`Dataset.from_tensor_slices`."""

    def __init__(self, tensors: Any):
        super().__init__()
        structure = to_arrays(tensors)
        leaves = flatten_with_paths(structure)
        if not leaves:
            raise DataError("from_tensor_slices: got no arrays")
        for path, leaf in leaves:
            if leaf.ndim == 0:
                raise DataError(f"from_tensor_slices: component {path} is a scalar; "
                                "it needs a first axis to slice")
        lengths = {path: leaf.shape[0] for path, leaf in leaves}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{p}: {n}" for p, n in lengths.items())
            raise DataError(f"from_tensor_slices: first axes differ in length ({listed})")
        self._tensors = map_structure(_read_only, structure)
        self._length = leaves[0][1].shape[0]

    def _iterate(self, key: Key) -> Iterator[Any]:
        tensors = self._tensors
        for i in builtins.range(self._length):
            # a[i, ...] is a 0-d array (not a numpy scalar) when a is 1-D
            yield map_structure(lambda a: a[i, ...], tensors)

    def _cardinality(self) -> int:
        return self._length

    def _element_spec(self) -> Any:
        return map_structure(lambda a: TensorSpec(tuple(a.shape[1:]), a.dtype), self._tensors)


class Range(Dataset):
    """Source step of :meth:`Dataset.range`: int64 0-d arrays."""

    def __init__(self, *args: int):
        super().__init__()
        for i, arg in enumerate(args):
            check_int("range", f"argument {i}", arg)
        try:
            self._range = builtins.range(*(int(a) for a in args))
        except (TypeError, ValueError) as exc:
            raise DataError(f"range: {exc}") from None

    def _iterate(self, key: Key) -> Iterator[Any]:
        for value in self._range:
            yield np.array(value, dtype=np.int64)

    def _cardinality(self) -> int:
        return len(self._range)

    def _element_spec(self) -> Any:
        return TensorSpec((), np.dtype(np.int64))
