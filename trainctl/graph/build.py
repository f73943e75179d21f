"""Spec → Model: validate each layer entry, name layers uniquely, infer shapes.

Every problem is a SpecError located at the layer's entry in the spec file; all layer
errors are reported together.
"""

from __future__ import annotations

import torch

from trainctl.errors import SpecError, SpecErrors, UnknownNameError
from trainctl.graph.model import LayerShapeError, Model
from trainctl.nn.layers import Layer, layers
from trainctl.spec import Spec, SpecDoc


def spec_doc(spec: Spec) -> SpecDoc:
    """The spec's document, or one without positions for a Spec built in code."""
    return spec.doc if spec.doc is not None else SpecDoc("<spec>", spec.to_dict())


def build_layers(spec: Spec) -> list[Layer]:
    """Layer objects (not yet built) for ``spec.model.layers``; raises SpecErrors."""
    doc = spec_doc(spec)
    errors: list[SpecError] = []
    built: list[Layer] = []
    taken: dict[str, int] = {}
    for i, entry in enumerate(spec.model.layers):
        path = ("model", "layers", i)
        try:
            cls = layers.get(entry["type"])
        except UnknownNameError as exc:
            errors.append(doc.error(path + ("type",), str(exc)))
            continue
        try:
            config = doc.validate(cls.Config, path)
        except SpecErrors as exc:
            errors.extend(exc.errors)
            continue
        name = config.name or _auto_name(cls.registered_name, taken)
        if name in taken:
            errors.append(doc.error(path + ("name",), f"layer name {name!r} is already used by "
                                                      f"model.layers[{taken[name]}]"))
            continue
        taken[name] = i
        built.append(cls(config, name=name))
    if errors:
        raise SpecErrors(errors)
    return built


def _auto_name(base: str, taken: dict[str, int]) -> str:
    """Keras-style unique names: dense, dense_1, dense_2, ..."""
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


def build_model(spec: Spec, device: torch.device | str = "cpu") -> Model:
    """Build the spec's model on ``device`` with shapes inferred.

    Raises SpecErrors for bad layer entries and for a layer that cannot take its input
    shape (located at that layer's entry).
    """
    model = Model(build_layers(spec), tuple(spec.model.input_shape), name=spec.name)
    try:
        model.build(device)
    except LayerShapeError as exc:
        raise SpecErrors([spec_doc(spec).error(("model", "layers", exc.index), exc.message)]) from None
    return model


