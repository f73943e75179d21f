"""The JSON Schema of a spec, for editors (``trainctl schema > trainctl.schema.json``).

It is pydantic's schema of :class:`~trainctl.spec.schema.Spec` (draft 2020-12) with every
registered section spelled out: where the spec takes ``{type: NAME, ...}`` (each of
``model.layers``, ``loss``, ``optimizer``, the data sources and pipeline steps), the
schema has a ``oneOf`` with one branch per registered name, holding that type's options;
where a bare name is allowed (``loss: mse``), an ``enum`` of the names as well. Boolean
fields also accept the words the spec loader reads as booleans (``yes``, ``off``, ...), and
the top level accepts ``base:``. A YAML file points at it with a first line such as
``# yaml-language-server: $schema=../trainctl.schema.json``.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from pydantic.json_schema import models_json_schema

from trainctl.registry import Registry
from trainctl.spec.inherit import BASE_KEY
from trainctl.spec.kinds import layer_kinds, loss_kinds, metric_names, optimizer_kinds
from trainctl.spec.kinds.callbacks import callback_kinds
from trainctl.spec.kinds.schedules import schedule_kinds
from trainctl.spec.schema import Spec

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BOOL_WORDS = ["yes", "no", "on", "off", "Yes", "No", "On", "Off", "YES", "NO", "ON", "OFF"]

# (where in pydantic's schema, registry key, bare names allowed): the sections to spell out.
# A path runs through "$defs" or "properties" names; "items" is a list's item; "anyOf"
# picks the object member of an Optional.
SECTIONS = [
    (("$defs", "ModelConfig", "properties", "layers", "items"), "layers", False),
    (("$defs", "ModelConfig", "properties", "nodes", "items"), "nodes", False),
    (("properties", "loss"), "losses", True),
    (("properties", "optimizer"), "optimizers", True),
    (("$defs", "DataConfig", "properties", "source", "anyOf"), "sources", False),
    (("$defs", "SectionConfig", "properties", "source", "anyOf"), "sources", False),
    (("$defs", "SectionConfig", "properties", "steps", "items"), "steps", True),
    (("properties", "schedule", "anyOf"), "schedules", True),
    (("properties", "callbacks", "items"), "callbacks", True),
    (("properties", "metrics", "items"), "metrics", True),
]


def spec_json_schema(sources: Registry | None = None, steps: Registry | None = None) -> dict:
    """The spec's JSON Schema as a dict (see the module docstring).

    The layer, loss and optimizer types come from :mod:`trainctl.spec.kinds`; the data
    ``sources`` and pipeline ``steps`` registries are passed in (they live in
    ``trainctl.data``); a section without its registry keeps pydantic's open mapping.
    """
    registries = {"layers": layer_kinds, "losses": loss_kinds, "optimizers": optimizer_kinds,
                  "sources": sources, "steps": steps, "schedules": schedule_kinds,
                  "callbacks": callback_kinds, "metrics": metric_names}
    kinds = [(key, name, cls) for key, reg in registries.items() if reg is not None
             for name, cls in reg.items()]
    keys, defs = models_json_schema([(Spec, "validation")] +
                                    [(cls.Config, "validation") for _, _, cls in kinds],
                                    ref_template="#/$defs/{model}")
    schema = defs["$defs"].pop(_ref_name(keys[(Spec, "validation")]))
    schema["$defs"] = defs["$defs"]
    branches: dict[str, list[dict]] = {}
    used: set[str] = set()  # the Configs copied into branches, dropped below
    for key, name, cls in kinds:
        entry = copy.deepcopy(defs["$defs"][_ref_name(keys[(cls.Config, "validation")])])
        used.add(_ref_name(keys[(cls.Config, "validation")]))
        entry["properties"] = {"type": {"const": name}, **entry.get("properties", {})}
        entry["required"] = ["type", *entry.get("required", [])]
        entry["title"] = f"{key}: {name}"
        def_name = f"{key}.{name}"
        schema["$defs"][def_name] = entry
        branches.setdefault(key, []).append({"$ref": f"#/$defs/{def_name}"})
    for def_name in used:
        del schema["$defs"][def_name]
    branches["nodes"] = [_node_def(schema, b["$ref"]) for b in branches.get("layers", [])]
    for path, key, bare in SECTIONS:
        if key in branches:
            _spell_out(schema, path, branches[key], registries[key].names() if bare else None)
    schema["properties"] = {BASE_KEY: {"type": "string", "description": "a spec to inherit "
                                       "from, relative to this file's folder (deep merge)"},
                            **schema["properties"]}
    _lenient_booleans(schema)
    return {"$schema": DRAFT, "$id": "trainctl.schema.json", "title": "trainctl spec", **schema}


def _node_def(schema: dict, ref: str) -> dict:
    """A ``model.nodes`` entry: the layer's entry plus ``inputs`` and ``shared_with``, with
    a required ``name`` (trainctl.spec.kinds.dag)."""
    layer = _ref_name({"$ref": ref})
    entry = copy.deepcopy(schema["$defs"][layer])
    names = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    entry["properties"].update({"inputs": {"anyOf": [{"type": "string"}, names]},
                                "shared_with": {"type": "string"}})
    entry["required"] = ["name", "type"]  # a node with shared_with gives no options
    entry["title"] = entry["title"].replace("layers:", "nodes:")
    schema["$defs"]["nodes." + layer.split(".", 1)[1]] = entry
    return {"$ref": "#/$defs/nodes." + layer.split(".", 1)[1]}


def _ref_name(entry: Mapping[str, Any]) -> str:
    return entry["$ref"].rsplit("/", 1)[1]


def _at(schema: dict, path: Iterable[str]) -> dict | None:
    """The node at ``path``. ``"anyOf"`` steps to the object member of an Optional; any
    other step missing from an ``anyOf`` node is looked up in its members (so
    ``layers.items`` also finds the items of an Optional list)."""
    node: Any = schema
    for part in path:
        members = node.get("anyOf") if isinstance(node, dict) else None
        if part == "anyOf" and isinstance(members, list):
            node = next((m for m in members if m.get("type") == "object"), None)
        elif isinstance(node, dict) and part not in node and isinstance(members, list):
            node = next((m[part] for m in members if isinstance(m, dict) and part in m), None)
        else:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _spell_out(schema: dict, path: tuple, branches: list[dict], bare: list[str] | None) -> None:
    """Replace the open mapping at ``path`` by one branch per registered type."""
    node = _at(schema, path)
    if node is None:
        return
    node.clear()
    one_of = {"oneOf": branches}
    node.update({"anyOf": [{"enum": bare}, one_of]} if bare else one_of)


def _lenient_booleans(node: Any) -> None:
    """``{"type": "boolean"}`` → boolean or one of :data:`BOOL_WORDS`, everywhere."""
    if isinstance(node, dict):
        if node.get("type") == "boolean":
            del node["type"]
            node["anyOf"] = [{"type": "boolean"}, {"enum": BOOL_WORDS}]
            return
        for value in node.values():
            _lenient_booleans(value)
    elif isinstance(node, list):
        for value in node:
            _lenient_booleans(value)
