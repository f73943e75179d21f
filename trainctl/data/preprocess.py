"""The preprocessing a trained model expects: the deterministic feature transforms of the
pipeline that evaluates it, with the statistics they learnt from the train split.

A run stores it in every checkpoint (``state.json``, key ``preprocessing``: JSON, arrays
written exactly, no pickle), so ``trainctl predict`` (and export) can prepare raw rows of
new data without reading the training data again. :class:`Preprocessing` is that list;
:func:`feature_preprocessing` picks it out of a split's pipeline steps.

What it holds, in order: each map transform (step ``{type: standardize}`` or ``{type: map,
transform: ...}``) of the test split's pipeline (the test section's steps, or train's
deterministic transforms when there is none) that acts ``on: features`` and is not random;
for the v0 form (``data.standardize: true``) the one standardize of the train statistics.
Batching, shuffling and the other non-map steps are left out: they do not change an
element. Label transforms (one_hot) and random augmentation are left out too.
"""

from __future__ import annotations

from typing import Any, Iterable

from trainctl.data.lazy import numpy as np

from trainctl.data.transforms import Standardize, Transform, transforms
from trainctl.errors import CheckpointError, DataError, SpecErrors, UnknownNameError


class Preprocessing:
    """Fitted feature transforms applied in order to raw features ([N, ...] batches)."""

    def __init__(self, steps: Iterable[Transform] = ()):
        self.steps: list[Transform] = list(steps)

    @classmethod
    def standardized(cls, mean: np.ndarray, std: np.ndarray) -> "Preprocessing":
        """One standardize with the given per-feature ``mean`` and ``std`` (the v0 form's
        ``data.standardize``: :class:`~trainctl.data.splits.Stats`)."""
        step = Standardize(Standardize.Config())
        step.load_fitted_state({"mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32)})
        return cls([step])

    def __bool__(self) -> bool:
        return bool(self.steps)

    def __call__(self, x: Any) -> np.ndarray:
        """The transformed features of a batch ``x`` [N, ...] (texts: str [N]).

        Batchable transforms act on the whole batch, the others element by element (their
        results must then share one shape). Raises DataError from a transform (e.g. a
        text where a number is expected).
        """
        for step in self.steps:
            if step.batchable:
                x = step.apply(x, None)
            else:
                items = [step.apply(e, None) for e in x]
                try:
                    x = np.stack(items) if items else np.asarray(items)
                except ValueError:
                    raise DataError(f"{step.name}: its results differ in shape from element to "
                                    f"element; they cannot form one batch") from None
        return np.asarray(x)

    def describe(self) -> str:
        return ", ".join(step.name for step in self.steps) or "none"

    def to_json(self) -> list[dict[str, Any]]:
        """``[{"type", "config", "fitted"}]``: JSON-able, arrays exact (:func:`encode_array`)."""
        return [{"type": step.name, "config": step.config.model_dump(),
                 "fitted": {k: encode_array(v) if isinstance(v, (np.ndarray, np.generic)) else v
                            for k, v in step.fitted_state().items()}}
                for step in self.steps]

    @classmethod
    def from_json(cls, entries: Any, where: str = "state.json") -> "Preprocessing":
        """The inverse of :meth:`to_json`; CheckpointError naming ``where`` when it is not one."""
        if not isinstance(entries, list):
            raise CheckpointError(f"{where}: preprocessing must be a list, got {type(entries).__name__}")
        steps = []
        for i, entry in enumerate(entries):
            try:
                cls_ = transforms.get(entry["type"])
                step = cls_(cls_.Config(**entry["config"]))
                step.load_fitted_state({k: decode_array(v) if isinstance(v, dict) and "dtype" in v else v
                                        for k, v in entry["fitted"].items()})
            except (KeyError, TypeError, ValueError, UnknownNameError, SpecErrors, DataError) as exc:
                raise CheckpointError(f"{where}: preprocessing step {i} is not readable "
                                      f"({type(exc).__name__}: {exc})") from None
            steps.append(step)
        return cls(steps)


def encode_array(value: np.ndarray | np.generic) -> dict[str, Any]:
    """An array as ``{"dtype", "shape", "values"}``; float32 values are written as the
    doubles they equal, so :func:`decode_array` gives the same bits back."""
    array = np.asarray(value)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "values": array.ravel().tolist()}


def decode_array(entry: dict[str, Any]) -> np.ndarray:
    """The array :func:`encode_array` wrote (ValueError/KeyError when malformed)."""
    return np.asarray(entry["values"], dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])


def feature_preprocessing(steps: Iterable[Any], fitted: dict[tuple[str, int], Transform]) -> Preprocessing:
    """The feature preprocessing of a split built from ``steps`` (the planner's parts:
    ``cls``, ``config``, ``transform``), taking fitted transforms from ``fitted`` (the
    train split's, by (name, occurrence), as :func:`~trainctl.data.spec_steps.apply_transform`
    keeps them)."""
    out, counts = [], {}
    for part in steps:
        if part.transform is not None:
            cls_, config = part.transform.cls, part.transform.config
        elif hasattr(part.cls, "transform"):
            cls_, config = part.cls.transform, part.config
        else:
            continue                      # batch, shuffle, cache, ...: elements unchanged
        step = cls_(config)
        if step.needs_fit:
            name = cls_.registered_name
            occurrence = counts.get(name, 0)
            counts[name] = occurrence + 1
            step = fitted[(name, occurrence)]
        if config.on == "features" and not cls_.random:
            out.append(step)
    return Preprocessing(out)
