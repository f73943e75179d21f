"""``interleave``: tf.data's interleave of the datasets a function makes of each element."""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable, Iterator

from trainctl.data.dataset import AUTOTUNE, Dataset, Key, check_int, transformations, where
from trainctl.data.parallel import _END, ahead, workers_for
from trainctl.data.steps import Step, call_unpacked
from trainctl.errors import DataError


@transformations.register("interleave")
class Interleave(Step):
    """tf.data's interleave: ``map_func(element)`` gives a Dataset per input element;
    ``cycle_length`` of them are open at once and ``block_length`` consecutive elements
    are taken from each in turn. When one ends, the next input element's dataset opens
    in its slot on the slot's next turn (tf.data's order exactly).

    ``cycle_length`` AUTOTUNE (-1) means one per CPU. With ``num_parallel_calls`` > 1
    each open dataset is produced ahead in its own thread; the order is unchanged.
    Inner dataset j of epoch e is iterated with key ``(e, j)``.
    """

    def __init__(self, input: Dataset, map_func: Callable[..., Dataset], cycle_length: int = AUTOTUNE,
                 block_length: int = 1, num_parallel_calls: int | None = None):
        super().__init__(input)
        if not callable(map_func):
            raise DataError(f"interleave: map_func must be callable, got {map_func!r}")
        check_int("interleave", "cycle_length", cycle_length, minimum=-1)
        check_int("interleave", "block_length", block_length, minimum=1)
        if cycle_length == 0:
            raise DataError("interleave: cycle_length must be >= 1 or AUTOTUNE (-1), got 0")
        self.map_func = map_func
        self.cycle_length = (os.cpu_count() or 1) if cycle_length == AUTOTUNE else int(cycle_length)
        self.block_length = int(block_length)
        self.parallel = workers_for("interleave", num_parallel_calls) > 1

    def _open(self, element: Any, key: Key, j: int) -> Iterator[Any]:
        ds = call_unpacked(self.map_func, element)
        if not isinstance(ds, Dataset):
            raise DataError(f"interleave: map_func must return a Dataset, got {type(ds).__name__} "
                            f"for input element {j}{where(key)}")
        if self.parallel:
            return ahead(lambda: ds._iterate((*key, j)), 2 * self.block_length, "trainctl-interleave")
        return ds._iterate((*key, j))

    def _all(self, key: Key) -> Iterator[Any]:
        inputs = self.input._iterate(key)
        cycle: list[Iterator[Any] | None] = [None] * self.cycle_length
        opened = i = block = 0
        live = 0
        end_of_input = False
        try:
            while not end_of_input or live > 0:
                current = cycle[i]
                if current is not None:
                    element = next(current, _END)
                    if element is not _END:
                        yield element
                        block += 1
                        if block == self.block_length:
                            block, i = 0, (i + 1) % self.cycle_length
                        continue
                    getattr(current, "close", lambda: None)()
                    cycle[i], live = None, live - 1
                    block, i = 0, (i + 1) % self.cycle_length
                elif not end_of_input:
                    element = next(inputs, _END)
                    if element is _END:
                        end_of_input = True
                    else:
                        cycle[i] = self._open(element, key, opened)
                        opened, live = opened + 1, live + 1
                else:
                    block, i = 0, (i + 1) % self.cycle_length
        finally:
            for it in cycle:
                getattr(it, "close", lambda: None)()
            getattr(inputs, "close", lambda: None)()

    def _iterate(self, key: Key, start: int = 0) -> Iterator[Any]:
        return itertools.islice(self._all(key), start, None)

    def _params(self) -> dict[str, Any]:
        return {"cycle_length": self.cycle_length, "block_length": self.block_length}

    def _cardinality(self) -> int:
        return 0 if self.input.cardinality() == 0 else -1

    def _element_spec(self) -> Any:
        elements = self.input._iterate((0,))
        try:
            first = next(elements, _END)
        finally:
            getattr(elements, "close", lambda: None)()
        if first is _END:
            raise DataError("interleave: cannot infer the element spec of an empty dataset")
        return self._open_spec(first)

    def _open_spec(self, element: Any) -> Any:
        ds = call_unpacked(self.map_func, element)
        if not isinstance(ds, Dataset):
            raise DataError(f"interleave: map_func must return a Dataset, got {type(ds).__name__}")
        return ds.element_spec
