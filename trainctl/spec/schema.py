"""The top-level spec schema and :func:`load_spec`.

Sections naming a registered thing (``data.source``, each of ``model.layers``, ``loss``,
``optimizer``, ``schedule``, each of ``callbacks``) are kept as plain dicts with a string
``type``; their other keys are validated later by the package that owns that thing, with
``SpecDoc.validate``.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Annotated, Any, Literal, Optional, Sequence, Union

from annotated_types import Gt
from pydantic import BeforeValidator, Field, PrivateAttr, Strict
from pydantic import field_validator, model_serializer, model_validator
from pydantic_core import PydanticCustomError, PydanticKnownError

from trainctl.errors import SpecErrors
from trainctl.spec.checkpointing import CheckpointConfig
from trainctl.spec.config import Config
from trainctl.spec.distribute import DistributeConfig
from trainctl.spec.doc import SpecDoc, load_doc
from trainctl.spec.execution import GraphConfig, drop_graph_for_eager_override
from trainctl.spec.messages import show
from trainctl.spec.overrides import Override, flag_overrides
from trainctl.spec.training import TrainConfig
from trainctl.spec.yaml_loader import dump_yaml

SPEC_FORMAT = 1


def _typed_section(value: Any, bare_name: bool) -> Any:
    """Check a ``{type: NAME, ...}`` mapping (or, if ``bare_name``, a bare ``NAME``)."""
    if bare_name and isinstance(value, str):
        return {"type": value}
    if not isinstance(value, dict):
        what = "a name or a mapping with a 'type'" if bare_name else "a mapping with a 'type'"
        raise PydanticCustomError("spec_section", "expected {what}, got {got}",
                                  {"what": what, "got": show(value)})
    if "type" not in value:
        raise PydanticCustomError("spec_section", "missing required field", {"key": "type"})
    if not isinstance(value["type"], str):
        raise PydanticCustomError("spec_section", "expected a name, got {got}",
                                  {"key": "type", "got": show(value["type"])})
    return value


TypedSection = Annotated[dict[str, Any], BeforeValidator(partial(_typed_section, bare_name=False))]


def _metric_entry(value: Any) -> Any:
    """A metric: a bare name (kept as a string) or ``{type: NAME, ...options}``."""
    return value if isinstance(value, str) else _typed_section(value, bare_name=True)


MetricEntry = Annotated[Union[str, dict[str, Any]], BeforeValidator(_metric_entry)]
NamedSection = Annotated[dict[str, Any], BeforeValidator(partial(_typed_section, bare_name=True))]
Dim = Annotated[int, Strict(), Gt(0)]


class SplitConfig(Config):
    """Fractions of the data held out for validation and test."""

    validation: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def check_sum(self) -> "SplitConfig":
        if self.validation + self.test >= 1:
            raise ValueError(f"validation + test must be < 1, got "
                             f"{self.validation} + {self.test}")
        return self


class SectionConfig(Config):
    """One split's pipeline: its own source (unless ``data.source`` is split) and steps."""

    source: Optional[TypedSection] = None
    steps: list[NamedSection] = Field(default_factory=list)


SECTIONS = ("train", "validation", "test")
V0_PIPELINE = ("batch_size", "shuffle", "drop_remainder", "standardize")


class DataConfig(Config):
    """Either one ``source`` with a ``split`` (and the v0 pipeline keys), or
    ``train``/``validation``/``test`` sections; trainctl.data checks the rest."""

    source: Optional[TypedSection] = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    batch_size: int = Field(32, gt=0)
    shuffle: bool = True
    drop_remainder: bool = False
    standardize: bool = False
    train: Optional[SectionConfig] = None
    validation: Optional[SectionConfig] = None
    test: Optional[SectionConfig] = None

    @model_validator(mode="after")
    def source_or_sections(self) -> "DataConfig":
        if self.source is None and all(getattr(self, k) is None for k in SECTIONS):
            raise PydanticCustomError("spec_data", "missing required field", {"key": "source"})
        return self

    @model_serializer(mode="wrap")
    def _used_keys(self, handler) -> dict[str, Any]:
        """Leave out absent sections and, in the sections form, the keys it does not use."""
        out = handler(self)
        for key in SECTIONS:
            if out.get(key, 0) is None:
                del out[key]
            elif isinstance(out.get(key), dict) and out[key].get("source", 0) is None:
                del out[key]["source"]
        if any(getattr(self, k) is not None for k in SECTIONS):
            for key in V0_PIPELINE + (() if self.source is not None else ("source", "split")):
                out.pop(key, None)
        return out


_MISSING = object()


class ModelConfig(Config):
    """Either a chain (``input_shape`` + ``layers``) or a DAG (``inputs`` + ``nodes``,
    optional ``outputs``); trainctl.spec.kinds.dag checks the graph."""

    input_shape: Optional[list[Dim]] = Field(None, min_length=1)
    layers: Optional[list[TypedSection]] = Field(None, min_length=1)
    inputs: Optional[list[dict[str, Any]]] = Field(None, min_length=1)
    nodes: Optional[list[TypedSection]] = Field(None, min_length=1)
    outputs: Optional[Any] = None

    @model_validator(mode="before")
    @classmethod
    def _chain_needs(cls, data: Any) -> Any:
        """Without ``nodes``, ``input_shape`` and ``layers`` are required: reported like
        any missing field, together with the errors of the other fields."""
        if isinstance(data, dict) and data.get("nodes") is None:
            return {**{k: _MISSING for k in ("input_shape", "layers") if k not in data}, **data}
        return data

    @field_validator("input_shape", "layers", mode="before")
    @classmethod
    def _not_missing(cls, value: Any) -> Any:
        if value is _MISSING:
            raise PydanticKnownError("missing")
        return value

    @model_validator(mode="after")
    def chain_or_dag(self) -> "ModelConfig":
        if self.nodes is None:
            for key in ("inputs", "outputs"):
                if getattr(self, key) is not None:
                    raise PydanticCustomError("spec_model", "{key} belongs to the nodes form; "
                                              "with layers use input_shape", {"key": key})
        else:
            for key in ("layers", "input_shape"):
                if getattr(self, key) is not None:
                    raise PydanticCustomError("spec_model", "give either layers or nodes, "
                                              "not both", {"key": key})
            if self.inputs is None:
                raise PydanticCustomError("spec_model", "missing required field", {"key": "inputs"})
        return self

    @model_serializer(mode="wrap")
    def _used_keys(self, handler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Spec(Config):
    """A validated spec. ``loss``, ``optimizer``, ``data.source`` and each of
    ``model.layers`` are dicts holding ``type`` and the raw options; ``doc`` is the
    :class:`SpecDoc` it was read from (None for a Spec built from a dict)."""

    name: str = Field(min_length=1)
    format: int = SPEC_FORMAT
    seed: int = Field(0, ge=0, lt=2**32)
    device: str = Field("auto", min_length=1)
    execution: Literal["eager", "graph"] = "eager"
    precision: Literal["fp32", "tf32", "bf16", "fp16"] = "fp32"  # trainctl.backend.precision
    data: DataConfig
    model: ModelConfig
    loss: NamedSection
    metrics: list[MetricEntry] = Field(default_factory=list)
    optimizer: NamedSection
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    distribute: Optional[DistributeConfig] = None
    schedule: Optional[NamedSection] = None
    callbacks: list[NamedSection] = Field(default_factory=list)
    # options of execution: graph (spec/execution.py); last, so that a resolved spec
    # without it keeps its line numbers
    graph: Optional[GraphConfig] = None

    _doc: Optional[SpecDoc] = PrivateAttr(None)

    @field_validator("format")
    @classmethod
    def known_format(cls, value: int) -> int:
        if value != SPEC_FORMAT:
            raise ValueError(f"unsupported spec format {value}; "
                             f"this trainctl reads format {SPEC_FORMAT}")
        return value

    @model_validator(mode="after")
    def graph_options_need_graph_mode(self) -> "Spec":
        if self.graph is not None and self.execution != "graph":
            raise PydanticCustomError("spec_graph", "graph options apply to execution: graph; "
                                      "this spec runs eager", {"key": "graph"})
        return self

    @property
    def doc(self) -> Optional[SpecDoc]:
        return self._doc

    @classmethod
    def from_doc(cls, doc: SpecDoc) -> "Spec":
        """Validate a whole document; raises SpecErrors with every problem found.

        When the top level has errors, the layers, loss, optimizer and metrics are checked
        against their kinds too (:func:`trainctl.spec.kinds.check.check_references`), so a
        typo there is reported in the same breath.
        """
        doc = drop_graph_for_eager_override(doc)  # --execution eager wins over graph:
        try:
            spec = doc.validate(cls, (), exclude=())
        except SpecErrors as exc:
            from trainctl.spec.kinds.check import check_references  # imports this module

            raise doc.sorted([*exc.errors, *check_references(doc).errors]) from None
        spec._doc = doc
        return spec

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the spec with defaults filled in, ready for ``yaml.safe_dump``."""
        return self.model_dump(mode="python")

    def to_yaml(self) -> str:
        """:meth:`to_dict` as YAML text that :func:`load_spec` reads back unchanged."""
        return dump_yaml(self.to_dict())

    def with_overrides(self, overrides: Sequence[Override | str] = (), *,
                       seed: int | None = None, epochs: int | None = None,
                       device: str | None = None) -> "Spec":
        """A new Spec with command-line overrides applied: ``overrides`` (``--set`` texts
        such as ``"optimizer.learning_rate=3e-4"``, or Override objects), then ``seed``,
        ``epochs`` and ``device`` (None keeps the spec's value).

        The overrides go through the same path as :func:`load_spec`'s: they change the
        document, which is validated again, so an error names the override, e.g.
        ``--epochs 0: train.epochs: must be > 0, got 0 (given on the command line)``.
        Raises SpecErrors.
        """
        doc = self._doc if self._doc is not None else SpecDoc("<spec>", self.to_dict())
        every = [*overrides, *flag_overrides(seed=seed, epochs=epochs, device=device)]
        return type(self).from_doc(doc.with_overrides(every))


def load_spec(file: str | os.PathLike, overrides: Sequence[Override | str] = ()) -> Spec:
    """Read, parse and validate the spec at ``file``, after merging its ``base:`` chain
    and applying ``overrides`` (``--set`` texts such as ``"train.epochs=3"``).

    Raises SpecError for an unreadable file or invalid YAML, SpecErrors for duplicate
    keys, a bad base or override, and every schema problem (all reported together, in
    file order).
    """
    return Spec.from_doc(load_doc(file, overrides))
