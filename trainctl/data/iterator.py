"""Iterators that know where they stand, and resume from a saved state.

``it = ds.iterator(epoch)`` (or ``iter(ds)``) iterates one epoch; ``it.state()`` is a
JSON-able dict::

    {"format": 1, "epoch": 3, "position": 120,
     "rng": [{"step": 1, "name": "shuffle", "seed": 7}],
     "pipeline": ["from_tensor_slices(length=1000)", "shuffle(buffer_size=1000, ...)", ...]}

``ds.iterator_from_state(state)`` gives an iterator that yields exactly the elements the
saved one had still to yield. Every random draw of a pipeline comes from a generator
seeded by (step seed, epoch, repetition[, element index]), so the random state at a
position is fixed by the seeds, the epoch and the position: ``rng`` records the seeds,
and restoring checks them (and the steps) against the dataset's. Resuming skips the
first ``position`` elements; steps that can (sources, map, batch, the index fast path,
take/skip/shard/repeat of a known size) skip without computing them, the others
(filter, a shuffle buffer over a non-indexable input, unbatch, interleave) replay.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterator

from trainctl.errors import DataError

if TYPE_CHECKING:
    from trainctl.data.dataset import Dataset

STATE_FORMAT = 1


class DatasetIterator:
    """One epoch of ``dataset`` from element ``position`` on; counts what it yields.

    ``position`` is the number of elements yielded in this epoch so far (including
    those skipped when resuming). ``close()`` stops any background threads early.
    """

    def __init__(self, dataset: "Dataset", epoch: int, position: int = 0):
        self.dataset = dataset
        self.epoch = epoch
        self.position = position
        self._it: Iterator[Any] = dataset._iterate((epoch,), position)

    def __iter__(self) -> "DatasetIterator":
        return self

    def __next__(self) -> Any:
        element = next(self._it)
        self.position += 1
        return element

    def close(self) -> None:
        getattr(self._it, "close", lambda: None)()

    def state(self) -> dict[str, Any]:
        """``{"format", "epoch", "position", "rng", "pipeline"}``, all JSON-able."""
        return {"format": STATE_FORMAT, "epoch": self.epoch, "position": self.position,
                "rng": rng_state(self.dataset), "pipeline": describe(self.dataset)}


def walk(ds: "Dataset") -> list["Dataset"]:
    """The steps of the pipeline ending in ``ds``, inputs before the steps reading them."""
    out: list["Dataset"] = []
    for parent in ds._inputs():
        out += walk(parent)
    out.append(ds)
    return out


def describe(ds: "Dataset") -> list[str]:
    """One line per step: ``name(param=value, ...)``, inputs first."""
    lines = []
    for step in walk(ds):
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in step._params().items())
        lines.append(f"{step.name}({params})")
    return lines


def rng_state(ds: "Dataset") -> list[dict[str, Any]]:
    """The seeds of the random steps: ``{"step": position in walk(ds), "name", "seed", ...}``."""
    return [{"step": i, "name": step.name, **step._seeds()}
            for i, step in enumerate(walk(ds)) if step._seeds()]


def restore(ds: "Dataset", state: Any) -> DatasetIterator:
    """The iterator :meth:`Dataset.iterator_from_state` returns; DataError on a bad state."""
    keys = {"format", "epoch", "position", "rng", "pipeline"}
    if not isinstance(state, dict) or set(state) != keys:
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise DataError(f"iterator state: expected a mapping with keys {sorted(keys)}, got {got}")
    if state["format"] != STATE_FORMAT:
        raise DataError(f"iterator state: format {state['format']!r} is not {STATE_FORMAT}")
    for name in ("epoch", "position"):
        value = state[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"iterator state: {name} must be an integer >= 0, got {value!r}")
    mine = describe(ds)
    if list(state["pipeline"]) != mine:
        saved = list(state["pipeline"])
        k = next((i for i, (a, b) in enumerate(zip(saved, mine)) if a != b), min(len(saved), len(mine)))
        was = saved[k] if k < len(saved) else "(nothing)"
        now = mine[k] if k < len(mine) else "(nothing)"
        raise DataError(f"iterator state: saved from another pipeline: step {k} was {was}, "
                        f"this dataset has {now}")
    if list(state["rng"]) != rng_state(ds):
        raise DataError(f"iterator state: saved with random seeds {state['rng']}, this dataset "
                        f"has {rng_state(ds)}; give the steps the seeds they had")
    return DatasetIterator(ds, state["epoch"], state["position"])
