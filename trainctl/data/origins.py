"""The in-memory origins of a pipeline: tensor slices, one element, a range, a Python
generator, and the zip of several datasets (see the constructors on Dataset)."""

from __future__ import annotations

import builtins
import itertools
from typing import Any, Callable, Iterable, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset, Key, check_int
from trainctl.data.structure import (TensorSpec, conform, flatten, flatten_with_paths,
                                     map_structure, to_arrays)
from trainctl.errors import DataError


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


class TensorSlices(Dataset):
    """Source of :meth:`Dataset.from_tensor_slices`; indexable (gathers batches by index)."""

    registered_name = "from_tensor_slices"

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
            if leaf.dtype == object:
                raise DataError(f"from_tensor_slices: component {path} holds Python objects; "
                                "elements must be numeric, boolean or string arrays")
        lengths = {path: leaf.shape[0] for path, leaf in leaves}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{p}: {n}" for p, n in lengths.items())
            raise DataError(f"from_tensor_slices: first axes differ in length ({listed})")
        self._tensors = map_structure(_read_only, structure)
        self._length = leaves[0][1].shape[0]

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        for i in builtins.range(start, self._length):
            yield self._element(i)

    def _element(self, i: int) -> Any:
        # a[i, ...] is a 0-d array (not a numpy scalar) when a is 1-D
        return map_structure(lambda a: a[i, ...], self._tensors)

    def _gather(self, index: np.ndarray) -> Any:
        """The elements at ``index`` (int64 [B]) stacked: each leaf [B, ...], a new array."""
        return map_structure(lambda a: np.take(a, index, axis=0), self._tensors)

    def _index_root(self) -> Dataset:
        return self

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        yield np.arange(self._length, dtype=np.int64)

    def _cardinality(self) -> int:
        return self._length

    def _params(self) -> dict[str, Any]:
        return {"length": int(self._length)}

    def _element_spec(self) -> Any:
        return map_structure(lambda a: TensorSpec(tuple(a.shape[1:]), a.dtype), self._tensors)


class FromTensors(Dataset):
    """Source of :meth:`Dataset.from_tensors`: one element."""

    registered_name = "from_tensors"

    def __init__(self, tensors: Any):
        super().__init__()
        self._element_value = map_structure(_read_only, to_arrays(tensors))

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        if start == 0:
            yield self._element_value

    def _cardinality(self) -> int:
        return 1

    def _element_spec(self) -> Any:
        return map_structure(lambda a: TensorSpec(tuple(a.shape), a.dtype), self._element_value)


class Range(Dataset):
    """Source of :meth:`Dataset.range`: int64 0-d arrays; indexable."""

    registered_name = "range"

    def __init__(self, *args: int):
        super().__init__()
        for i, arg in enumerate(args):
            check_int("range", f"argument {i}", arg)
        try:
            self._range = builtins.range(*(int(a) for a in args))
        except (TypeError, ValueError) as exc:
            raise DataError(f"range: {exc}") from None

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        for value in self._range[start:]:
            yield np.array(value, dtype=np.int64)

    def _element(self, i: int) -> np.ndarray:
        return np.array(self._range[i], dtype=np.int64)

    def _gather(self, index: np.ndarray) -> np.ndarray:
        r = self._range
        return (r.start + index * r.step).astype(np.int64)

    def _index_root(self) -> Dataset:
        return self

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        yield np.arange(len(self._range), dtype=np.int64)

    def _cardinality(self) -> int:
        return len(self._range)

    def _params(self) -> dict[str, Any]:
        r = self._range
        return {"start": r.start, "stop": r.stop, "step": r.step}

    def _element_spec(self) -> Any:
        return TensorSpec((), np.dtype(np.int64))


class FromGenerator(Dataset):
    """Source of :meth:`Dataset.from_generator`."""

    registered_name = "from_generator"

    def __init__(self, generator: Callable[[], Iterable[Any]], output_signature: Any):
        super().__init__()
        if not callable(generator):
            raise DataError(f"from_generator: generator must be callable (a function returning "
                            f"an iterable), got {generator!r}")
        specs = flatten(output_signature)
        if not specs or not all(isinstance(s, TensorSpec) for s in specs):
            raise DataError("from_generator: output_signature must be a structure of TensorSpec")
        self.generator = generator
        self.signature = output_signature

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        produced = iter(self.generator())
        for i, element in enumerate(itertools.islice(produced, start, None), start):
            try:
                yield conform(element, self.signature)
            except DataError as exc:
                raise DataError(f"from_generator: element {i}: {exc}") from None

    def _cardinality(self) -> int:
        return -1

    def _element_spec(self) -> Any:
        return self.signature


class Zip(Dataset):
    """Source of :meth:`Dataset.zip`: a tuple or dict of datasets iterated in lockstep."""

    registered_name = "zip"

    def __init__(self, datasets: Any):
        super().__init__()
        members = flatten(datasets)
        if not members or not all(isinstance(d, Dataset) for d in members):
            raise DataError("zip: expects datasets, as arguments or one tuple or dict of them")
        self.datasets = datasets
        self._members = members

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        iterators = [d._iterate(key, start) for d in self._members]
        try:
            for elements in zip(*iterators):
                # rebuild the datasets' structure with the elements in place of the datasets
                leaves = iter(elements)
                yield map_structure(lambda _: next(leaves), self.datasets)
        finally:
            for it in iterators:
                getattr(it, "close", lambda: None)()

    def _inputs(self) -> tuple[Dataset, ...]:
        return tuple(self._members)

    def _cardinality(self) -> int:
        sizes = [d.cardinality() for d in self._members]
        finite = [n for n in sizes if n >= 0]
        if finite:
            return min(finite) if -1 not in sizes or min(finite) == 0 else -1
        return -1 if -1 in sizes else sizes[0]

    def _element_spec(self) -> Any:
        specs = iter([d.element_spec for d in self._members])
        return map_structure(lambda _: next(specs), self.datasets)

