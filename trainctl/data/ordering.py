"""Ordering and grouping steps: shuffle, batch, padded_batch.

``shuffle`` over an indexable input computes the epoch's order as one index array and
``batch`` over an indexable input gathers each batch with one ``numpy.take`` per array:
the fast path of ``from_tensor_slices -> shuffle -> batch`` (a permutation plus batched
fancy indexing). The element-by-element path gives the same elements in the same order.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import (INFINITE_CARDINALITY, Dataset, Key, check_bool, check_int,
                                   drop_indices, transformations)
from trainctl.data.steps import IndexStep, Step
from trainctl.data.structure import TensorSpec, flatten, map_structure, pad_stack, stack
from trainctl.errors import DataError

_END = object()


class _Draws:
    """Uniform indices in [0, n) from ``rng``, drawn in chunks (one draw per output)."""

    def __init__(self, rng: np.random.Generator, chunk: int = 1024):
        self._rng, self._chunk = rng, chunk
        self._u: list[float] = []

    def index(self, n: int) -> int:
        if not self._u:
            self._u = self._rng.random(self._chunk).tolist()[::-1]
        return min(int(self._u.pop() * n), n - 1)


def shuffle_stream(items: Iterable[Any], buffer_size: int, rng: np.random.Generator) -> Iterator[Any]:
    """``items`` in the order of a shuffle buffer of ``buffer_size`` (see :class:`Shuffle`)."""
    it = iter(items)
    buffer = list(itertools.islice(it, buffer_size))
    extra = next(it, _END)
    if extra is _END:                       # everything fits: a uniform permutation
        for i in rng.permutation(len(buffer)).tolist():
            yield buffer[i]
        return
    yield from _buffered(itertools.chain(buffer, [extra], it), buffer_size, rng)


def _buffered(items: Iterable[Any], buffer_size: int, rng: np.random.Generator) -> Iterator[Any]:
    draws = _Draws(rng)
    buffer: list[Any] = []
    for element in items:
        if len(buffer) < buffer_size:
            buffer.append(element)
            continue
        i = draws.index(len(buffer))
        yield buffer[i]
        buffer[i] = element
    while buffer:
        i = draws.index(len(buffer))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        yield buffer.pop()


@transformations.register("shuffle")
class Shuffle(IndexStep):
    """Random order through a buffer, with tf.data's semantics.

    The buffer is first filled with the first ``buffer_size`` input elements. When that
    holds the whole input, the output is ``buffer[rng.permutation(n)]``: a uniform random
    permutation. Otherwise each output is a uniformly chosen buffer slot, which is
    refilled with the next input element; once the input is exhausted the rest of the
    buffer is emitted in uniformly random order. So an element can move back arbitrarily
    far but forward at most ``buffer_size - 1`` places (``buffer_size=1`` keeps the
    order), and element 0 is still in the buffer after t outputs with probability
    ``(1 - 1/buffer_size)**t``.

    The generator is ``numpy.random.default_rng([seed, *key])`` (key ``(epoch,)`` at
    top level), so each epoch has its own order and the same (seed, epoch) the same one;
    with ``reshuffle_each_iteration=False`` it is ``default_rng([seed])`` for every
    epoch. ``seed=None`` draws a seed from the OS once, when the step is made (such a
    pipeline cannot be resumed in another process: give a seed).
    """

    def __init__(self, input: Dataset, buffer_size: int, seed: int | None = None,
                 reshuffle_each_iteration: bool = True):
        super().__init__(input)
        check_int("shuffle", "buffer_size", buffer_size, minimum=1)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy) % 2**63  # type: ignore[operator]
        check_int("shuffle", "seed", seed, minimum=0)
        self.reshuffle_each_iteration = check_bool("shuffle", "reshuffle_each_iteration",
                                                   reshuffle_each_iteration)
        self.buffer_size, self.seed = int(buffer_size), int(seed)

    def _rng(self, key: Key) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key] if self.reshuffle_each_iteration
                                     else [self.seed])

    def _index_root(self) -> Dataset | None:
        if self.input.cardinality() == INFINITE_CARDINALITY:
            return None
        return self.input._index_root()

    def _index_order(self, key: Key) -> Iterator[np.ndarray]:
        chunks = list(self.input._index_order(key))
        order = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        rng = self._rng(key)
        if len(order) <= self.buffer_size:
            yield order[rng.permutation(len(order))]
        else:
            yield np.fromiter(_buffered(order.tolist(), self.buffer_size, rng), np.int64, len(order))

    def _iterate_elements(self, key: Key, start: int) -> Iterator[Any]:
        ordered = shuffle_stream(self.input._iterate(key), self.buffer_size, self._rng(key))
        return itertools.islice(ordered, start, None)

    def _params(self) -> dict[str, Any]:
        return {"buffer_size": self.buffer_size,
                "reshuffle_each_iteration": self.reshuffle_each_iteration}

    def _seeds(self) -> dict[str, Any]:
        return {"seed": self.seed}


def rebatch(chunks: Iterable[np.ndarray], size: int, drop_remainder: bool) -> Iterator[np.ndarray]:
    """Index arrays of ``size`` from consecutive chunks (the last one short unless dropped)."""
    pending: list[np.ndarray] = []
    count = 0
    for chunk in chunks:
        pos = 0
        if pending:
            part = chunk[:size - count]
            pending.append(part)
            count += len(part)
            pos = len(part)
            if count < size:
                continue
            yield np.concatenate(pending)
            pending, count = [], 0
        full = (len(chunk) - pos) // size
        for k in range(full):
            yield chunk[pos + k * size:pos + (k + 1) * size]
        rest = chunk[pos + full * size:]
        if len(rest):
            pending, count = [rest], len(rest)
    if pending and not drop_remainder:
        yield np.concatenate(pending)


class _Batching(Step):
    def __init__(self, input: Dataset, op: str, batch_size: int, drop_remainder: bool):
        super().__init__(input)
        check_int(op, "batch_size", batch_size, minimum=1)
        self.drop_remainder = check_bool(op, "drop_remainder", drop_remainder)
        self.batch_size = int(batch_size)

    def _groups(self, key: Key, start: int) -> Iterator[list[Any]]:
        # batch k holds input elements [k*B, (k+1)*B): resuming at batch `start` skips start*B
        pending: list[Any] = []
        for element in self.input._iterate(key, start * self.batch_size):
            pending.append(element)
            if len(pending) == self.batch_size:
                yield pending
                pending = []
        if pending and not self.drop_remainder:
            yield pending

    def _cardinality(self) -> int:
        n = self.input.cardinality()
        if n < 0:
            return n
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def _params(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "drop_remainder": self.drop_remainder}


@transformations.register("batch")
class Batch(_Batching):
    """Stack ``batch_size`` consecutive elements leaf-wise: leaf [s...] → [batch_size, s...].

    The last batch holds the remainder unless ``drop_remainder``. The element spec's
    first dimension is ``batch_size`` when ``drop_remainder`` else None. Raises DataError
    when elements of one batch differ in shape. Over an indexable input each batch is
    gathered with one ``numpy.take`` per array (no per-element work).
    """

    def __init__(self, input: Dataset, batch_size: int, drop_remainder: bool = False):
        super().__init__(input, "batch", batch_size, drop_remainder)

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        root = self.input._index_root()
        if root is not None:
            chunks = drop_indices(self.input._index_order(key), start * self.batch_size)
            for index in rebatch(chunks, self.batch_size, self.drop_remainder):
                yield root._gather(index)
            return
        for group in self._groups(key, start):
            yield stack(group)

    def _element_spec(self) -> Any:
        first = self.batch_size if self.drop_remainder else None
        return map_structure(lambda s: TensorSpec((first, *s.shape), s.dtype),
                             self.input.element_spec)


@transformations.register("padded_batch")
class PaddedBatch(_Batching):
    """Batch elements of different shapes, padding each leaf at the end of every axis.

    ``padded_shapes``: a structure like the element of shapes (lists) whose None
    dimensions pad to the largest in the batch; None pads every dimension so. Padding
    is ``padding_values`` (a scalar or structure of scalars; default 0, "" for strings).
    Raises DataError when an element is larger than a fixed padded dimension.
    """

    def __init__(self, input: Dataset, batch_size: int, padded_shapes: Any = None,
                 padding_values: Any = None, drop_remainder: bool = False):
        super().__init__(input, "padded_batch", batch_size, drop_remainder)
        self.padded_shapes, self.padding_values = padded_shapes, padding_values

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        for group in self._groups(key, start):
            yield pad_stack(group, self.padded_shapes, self.padding_values)

    def _params(self) -> dict[str, Any]:
        shapes = None if self.padded_shapes is None else str(self.padded_shapes)
        return {**super()._params(), "padded_shapes": shapes}

    def _element_spec(self) -> Any:
        first = self.batch_size if self.drop_remainder else None
        spec = self.input.element_spec
        if self.padded_shapes is None:
            return map_structure(lambda s: TensorSpec((first, *[None] * len(s.shape)), s.dtype), spec)
        shapes = iter(flatten(_shape_leaves(self.padded_shapes, spec)))
        return map_structure(lambda s: TensorSpec((first, *next(shapes)), s.dtype), spec)


def _shape_leaves(shapes: Any, spec: Any) -> Any:
    """``padded_shapes`` laid out like ``spec`` with each shape as a list (one leaf)."""
    if isinstance(spec, tuple):
        return tuple(_shape_leaves(s, p) for s, p in zip(shapes, spec))
    if isinstance(spec, dict):
        return {k: _shape_leaves(shapes[k], spec[k]) for k in spec}
    if len(shapes) != len(spec.shape):
        raise DataError(f"padded_batch: padded shape {list(shapes)} does not have the rank of "
                        f"{spec}")
    return [None if d is None else int(d) for d in shapes]
