"""A spec's ``data`` section → a validated :class:`DataPlan` → :class:`Splits`.

Two forms (docs/spec.md, "data"):

- one ``source`` with a ``split`` and the v0 pipeline keys (``batch_size``, ``shuffle``,
  ``drop_remainder``, ``standardize``), built by :func:`~trainctl.data.splits.build_splits`;
- ``train``/``validation``/``test`` sections, each a list of ``steps`` over either the
  section's own ``source`` or its part of the seeded, stratified ``split`` of
  ``data.source``. A split of ``data.source`` without a section gets the train
  section's deterministic map transforms (fitted on train) and batches of
  ``train.eval_batch_size``; a validation/test section without a batching step is
  batched so too.

:func:`plan_data` checks every source, step and transform against its registry and its
Config before anything is loaded, and reports all problems at once (SpecErrors, located).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainctl.data.lazy import numpy as np

from trainctl.data.dataset import Dataset
from trainctl.data.file_sources import FileSource
from trainctl.data.facts import label_shape
from trainctl.data.preprocess import feature_preprocessing
from trainctl.data.sources import SourceData, describe_source, source_facts, sources
from trainctl.data.spec_select import ElementStep
from trainctl.data.spec_steps import CacheStep, Context, MapStep, pipeline_steps
from trainctl.data.splits import (Splits, _split_indices, _split_sizes, build_splits,
                                   replica_shard)
from trainctl.data.transforms import transforms
from trainctl.errors import DataError, SpecErrors, UnknownNameError
from trainctl.spec import SpecDoc
from trainctl.spec.kinds.check import DataFacts
from trainctl.spec.schema import SECTIONS, V0_PIPELINE, DataConfig


@dataclass
class Part:
    """A validated registered thing: its class, Config instance and key path."""

    cls: Any
    config: Any
    path: tuple
    transform: "Part | None" = None      # the transform of a ``map`` step
    nested: "Part | None" = None         # the predicate of a filter, the source of a zip


@dataclass
class Section:
    name: str
    source: Part | None
    steps: list[Part] = field(default_factory=list)


class _Check:
    def __init__(self, doc: SpecDoc, base: Path):
        self.doc, self.errors, self.base = doc, [], base

    def add(self, path: tuple, message: str) -> None:
        self.errors.append(self.doc.error(path, message))

    def part(self, registry, path: tuple, name: Any) -> Part | None:
        try:
            cls = registry.get(name)
        except UnknownNameError as exc:
            self.add(path + ("type",), str(exc))
            return None
        try:
            return Part(cls, self.doc.validate(cls.Config, path, exclude=("type",)), path)
        except SpecErrors as exc:
            self.errors.extend(exc.errors)
            return None


def _base_dir(doc: SpecDoc) -> Path:
    return Path(doc.file).resolve().parent if doc.file and not doc.file.startswith("<") else Path.cwd()


def plan_data(data: DataConfig, doc: SpecDoc) -> "DataPlan":
    """Validate ``data`` (the spec's data section, read from ``doc``); SpecErrors if bad."""
    base = _base_dir(doc)
    check = _Check(doc, base)
    source = _source(check, data.source, ("data", "source"), base) if data.source else None
    given = [name for name in SECTIONS if getattr(data, name) is not None]
    sections: dict[str, Section] = {}
    if given:
        for key in V0_PIPELINE:
            if key in data.model_fields_set:
                check.add(("data", key), "the train/validation/test sections take the pipeline "
                          "as steps; remove this key (e.g. use {type: batch, batch_size: N})")
        if "train" not in given:
            check.add(("data", "train"), "missing required field")
    for name in given:
        cfg = getattr(data, name)
        path = ("data", name)
        own = None
        if cfg.source is not None:
            if data.source is not None:
                check.add(path + ("source",), "data.source is already split into the sections; "
                          "give either data.source or a source per section")
            own = _source(check, cfg.source, path + ("source",), base)
        elif data.source is None:
            check.add(path + ("source",), "missing required field")
        steps = [_step(check, entry, path + ("steps", i)) for i, entry in enumerate(cfg.steps)]
        sections[name] = Section(name, own, [s for s in steps if s is not None])
    for name, section in sections.items():
        _check_order(check, section, own_source=section.source is not None)
    if "train" in sections and not any(s.cls.batching for s in sections["train"].steps):
        check.add(("data", "train", "steps"), "the train steps need a batch or padded_batch step")
    _check_fitted(check, sections)
    if check.errors:
        raise SpecErrors(sorted(check.errors, key=lambda e: (e.line is None, e.line or 0, e.col or 0)))
    return DataPlan(data, base, source, sections, doc)


def _source(check: _Check, entry: dict, path: tuple, base: Path) -> Part | None:
    part = check.part(sources, path, entry["type"])
    if part is not None and issubclass(part.cls, FileSource):
        for key, message in part.cls.missing_paths(part.config, base).items():
            check.add(path + (key,), message)
    return part


def _step(check: _Check, entry: dict, path: tuple) -> Part | None:
    part = check.part(pipeline_steps, path, entry["type"])
    if part is not None and getattr(part.cls, "nested", None):
        key, registry = part.cls.nested
        value = getattr(part.config, key)
        value = {"type": value} if isinstance(value, str) else value
        if not isinstance(value.get("type"), str):
            check.add(path + (key, "type"), "missing required field")
            return None
        part.nested = (_source(check, value, path + (key,), check.base) if registry is sources
                       else check.part(registry, path + (key,), value["type"]))
        return part if part.nested is not None else None
    if part is not None and part.cls is MapStep:
        transform = part.config.transform
        transform = {"type": transform} if isinstance(transform, str) else transform
        if not isinstance(transform.get("type"), str):
            check.add(path + ("transform", "type"), "missing required field")
            return None
        part.transform = check.part(transforms, path + ("transform",), transform["type"])
        return part if part.transform is not None else None
    return part


def _check_order(check: _Check, section: Section, own_source: bool) -> None:
    """Element steps before the batching step; zip only over the section's own source."""
    batched = False
    for part in section.steps:
        if issubclass(part.cls, ElementStep):
            name = part.cls.registered_name
            if batched:
                check.add(part.path, f"{name} works on single elements; put it before the "
                          "batch step")
            if getattr(part.cls, "needs_own_source", False) and not own_source:
                check.add(part.path, f"{name} pairs the section's own source with another, "
                          "row by row; give this section a source (a split of data.source "
                          "is in shuffled order)")
        batched = batched or part.cls.batching


def _fit_name(part: Part) -> str | None:
    """The transform name of a step that takes statistics from train, else None."""
    t = part.transform or (Part(part.cls.transform, part.config, part.path)
                           if hasattr(part.cls, "transform") else None)
    return t.cls.registered_name if t is not None and t.cls(t.config).needs_fit else None


def _check_fitted(check: _Check, sections: dict[str, Section]) -> None:
    train = sections.get("train")
    have: dict[str, int] = {}
    for part in train.steps if train else []:
        name = _fit_name(part)
        if name:
            have[name] = have.get(name, 0) + 1
    for section in sections.values():
        if section.name == "train":
            continue
        seen: dict[str, int] = {}
        for part in section.steps:
            name = _fit_name(part)
            if name:
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > have.get(name, 0):
                    check.add(part.path, f"{name} takes its statistics from the train split; add "
                              f"a matching {name} step to data.train.steps")


def _pair_spec(train: Dataset) -> tuple:
    """The element spec of the train pipeline, which must give (features, label) pairs."""
    spec = train.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2) or isinstance(spec[0], (tuple, dict)):
        raise DataError(f"data.train: the pipeline must give (features, label) batches, "
                        f"its elements are {spec}")
    return spec


class DataPlan:
    """A validated data section; :meth:`load` reads the data and builds the pipelines."""

    def __init__(self, data: DataConfig, base_dir: Path, source: Part | None,
                 sections: dict[str, Section], doc: SpecDoc | None = None):
        self.data, self.base_dir, self.source, self.sections = data, base_dir, source, sections
        self.class_names: tuple[str, ...] | None = None
        self.doc = doc
        self.stages: dict[str, list] = {}

    @property
    def source_name(self) -> str:
        part = self.source or self.sections["train"].source
        return part.cls.registered_name

    def _load(self, part: Part, seed: int) -> SourceData:
        return part.cls.load(part.config, seed, self.base_dir)

    def load(self, seed: int, eval_batch_size: int = 256,
             shard: tuple[int, int] | None = None) -> Splits:
        """Read the sources and build the three splits (DataError for bad data).

        ``shard`` ``(num_shards, index)``: the train split is this replica's part of each
        epoch (:func:`~trainctl.data.splits.replica_shard`, just before the first batching
        step), for data-parallel training."""
        d = self.data
        if not self.sections:
            return build_splits(self._load(self.source, seed), validation=d.split.validation,
                                test=d.split.test, seed=seed, batch_size=d.batch_size,
                                shuffle=d.shuffle, drop_remainder=d.drop_remainder,
                                standardize=d.standardize, eval_batch_size=eval_batch_size,
                                source_name=self.source_name, shard=shard)
        parts = self._parts(seed)
        num_classes = parts["train"][2]
        ctx = Context(seed, self.base_dir, num_classes=num_classes, class_names=self.class_names)
        built = {name: self._pipeline(name, *parts[name][:2], ctx, eval_batch_size,
                                     shard if name == "train" else None)
                 for name in SECTIONS}
        spec = _pair_spec(built["train"])
        sizes = {name: len(parts[name][1]) for name in SECTIONS}
        sizes["train"] = self._train_count("train", sizes["train"])
        return Splits(train=built["train"], validation=built["validation"], test=built["test"],
                      input_shape=tuple(int(s) for s in spec[0].shape[1:] if s is not None),
                      num_classes=num_classes, stats=None, source_name=self.source_name,
                      class_names=self.class_names,
                      sizes=sizes,
                      preprocessing=feature_preprocessing(self._steps_of("test"), ctx.fitted))

    def describe(self, seed: int) -> DataFacts:
        """What ``trainctl validate`` checks the model against: one training element's
        feature and label shapes and the number of classes. One source with a split: its
        :func:`source_facts` (no numpy where the source has ``facts``). Sections: each
        source's cheap ``describe`` (:func:`describe_source`) and the train pipeline run
        over it. Neither splits or reads whole data sets where a source can say what it
        holds (scikit-learn is not imported). DataError as :meth:`load` for unreadable data."""
        d = self.data
        if not self.sections:   # no numpy where the source has facts (source_facts)
            facts = source_facts(self.source.cls, self.source.config, seed, self.base_dir)
            _split_sizes(facts.samples, d.split.validation, d.split.test)
            return DataFacts(facts.x_shape, facts.num_classes, self.source_name, facts.y_shape)
        part = self.sections["train"].source or self.source
        data = describe_source(part.cls, part.config, seed, self.base_dir)
        ctx = Context(seed, self.base_dir, num_classes=data.num_classes,
                      class_names=data.class_names)
        train = self._pipeline("train", data.x, data.y, ctx, 1)
        if not hasattr(part.cls, "describe"):   # the whole source was read: nothing left
            self._train_count("train", len(data), first_only=True)   # there, none in train
        spec = _pair_spec(train)
        return DataFacts(tuple(int(s) for s in spec[0].shape[1:] if s is not None),
                         data.num_classes, self.source_name, label_shape(train))

    def _pipeline(self, name: str, x: np.ndarray, y: np.ndarray, ctx: Context,
                  eval_batch_size: int, shard: tuple[int, int] | None = None) -> Dataset:
        """The section ``name``'s steps over ``(x, y)`` slices; an evaluation section
        without a batching step is batched by ``eval_batch_size``; ``shard``: the replica's
        part of the elements, taken just before the first batching step."""
        ds = Dataset.from_tensor_slices((x, y))
        steps = self._steps_of(name)
        ctx.is_train, ctx.counts, ctx.batched = name == "train", {}, False
        self.stages[name] = stages = []      # (step, dataset after it) before the batching
        for part in steps:
            ctx.path = part.path
            if shard is not None and part.cls.batching and not ctx.batched:
                ds = replica_shard(ds, *shard)
            inner = part.transform or part.nested
            try:
                ds = part.cls.build(ds, part.config, ctx, (inner.cls, inner.config)) if inner \
                    else part.cls.build(ds, part.config, ctx)
            except DataError as exc:     # e.g. a predicate that cannot fit the data: locate it
                raise self._located(part.path, exc) from exc
            ctx.batched = ctx.batched or part.cls.batching
            if not ctx.batched:
                stages.append((part, ds))
        if name != "train" and not any(p.cls.batching for p in steps):
            ds = ds.batch(eval_batch_size)
        return ds

    def _located(self, path: tuple, exc: DataError) -> Exception:
        """``exc`` as a SpecError at the step's ``path`` in the spec file (its message
        without the key prefix ``data.train.steps[0]: ``, which the SpecError gives)."""
        if self.doc is None:
            return exc
        key = ".".join(str(p) for p in path[:3]) + "".join(f"[{p}]" for p in path[3:])
        message = str(exc)
        return self.doc.error(path, message[len(key) + 2:] if message.startswith(key + ": ")
                              else message)

    def _train_count(self, name: str, size: int, first_only: bool = False) -> int:
        """The elements of split ``name`` before its batching step: ``size`` when no step
        changes the count, else counted by one pass over epoch 0 (a filter, as ``data
        inspect`` counts; ``first_only``: 1 once one element comes, for a check only).
        DataError naming the split and the step that left no element."""
        stages = self.stages.get(name, [])
        if not stages:
            return size
        count = stages[-1][1].cardinality()
        if count < 0:
            elements = stages[-1][1].iterate(0)
            count = int(next(iter(elements), None) is not None) if first_only else \
                sum(1 for _ in elements)
        if count == 0 and size > 0:
            for part, ds in stages:
                if ds.cardinality() == 0 or next(iter(ds.iterate(0)), None) is None:
                    raise DataError(f"data.{name}: no elements left after steps[{part.path[-1]}] "
                                    f"({part.cls.registered_name})")
        return count

    def _steps_of(self, name: str) -> list[Part]:
        if name in self.sections:
            return self.sections[name].steps
        # a split of data.source without a section: train's deterministic transforms
        return [p for p in self.sections["train"].steps
                if (p.transform or hasattr(p.cls, "transform"))
                and not (p.transform.cls if p.transform else p.cls.transform).random]

    def _parts(self, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, int | None]]:
        if self.source is not None:
            data = self._load(self.source, seed)
            sizes = _split_sizes(len(data), self.data.split.validation, self.data.split.test)
            labels = data.y if data.num_classes is not None and data.y.ndim == 1 else None
            index = _split_indices(len(data), sizes, labels, seed)
            self.class_names = data.class_names
            return {name: (data.x[i], data.y[i], data.num_classes) for name, i in index.items()}
        out = {}
        for name in SECTIONS:
            section = self.sections.get(name)
            if section is None:
                train = out["train"]
                out[name] = (train[0][:0], train[1][:0], train[2])
                continue
            data = self._load(section.source, seed)
            out[name] = (data.x, data.y, data.num_classes)
            if name == "train":
                self.class_names = data.class_names
        return out

    def resolved(self) -> dict[str, Any]:
        """The data section with every default filled in and file paths made absolute."""
        out = self.data.model_dump()
        if self.source is not None:
            out["source"] = self._resolved_source(self.source)
        for name, section in self.sections.items():
            entry: dict[str, Any] = {}
            if section.source is not None:
                entry["source"] = self._resolved_source(section.source)
            entry["steps"] = [self._resolved_step(p) for p in section.steps]
            out[name] = entry
        return out

    def _resolved_source(self, part: Part) -> dict[str, Any]:
        config = part.config
        if issubclass(part.cls, FileSource):
            config = part.cls.absolute(config, self.base_dir)
        return {"type": part.cls.registered_name, **config.model_dump()}

    def _resolved_step(self, part: Part) -> dict[str, Any]:
        options = part.config.model_dump()
        if part.transform is not None:
            options["transform"] = {"type": part.transform.cls.registered_name,
                                    **part.transform.config.model_dump()}
        if part.nested is not None:
            key = part.cls.nested[0]
            options[key] = (self._resolved_source(part.nested) if key == "source" else
                            {"type": part.nested.cls.registered_name, **part.nested.config.model_dump()})
        if part.cls is CacheStep and options["filename"]:
            options["filename"] = str((self.base_dir / options["filename"]).resolve())
        return {"type": part.cls.registered_name, **options}

