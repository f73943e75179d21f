"""The portable export: the weights alone as a safetensors file, plus a JSON description
of the graph from which trainctl (or anyone) rebuilds the model.

``export_portable(model, "model.safetensors")`` writes ``model.safetensors`` (every
variable by its checkpoint name ``<layer>/<weight>``, on the CPU, safetensors'
metadata ``{"format": "trainctl-model"}``) and ``model.json``::

    {"format": "trainctl-model", "version": 1, "name": ..., "weights": "model.safetensors",
     "inputs":  [{"name", "shape" (no batch axis), "dtype", "columns"?}],
     "nodes":   [{"name", "type", "inputs": [value names], "options": {the layer's
                  options, defaults filled in}, "shared_with"?, "output_shape", "dtype",
                  "weights": {"<weight>": {"tensor": "<layer>/<weight>", "shape",
                  "dtype", "trainable"}}}],
     "outputs": [{"name", "shape", "dtype"}],
     "metadata": {...}}

A ``layers:`` chain is written as the same graph (one input ``input``, each node fed by
the one before). :func:`load_portable` rebuilds a :class:`~trainctl.graph.GraphModel`
from the two files through the spec's own validation (so an edited description that no
longer makes sense is a located error) and loads the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainctl.errors import CheckpointError
from trainctl.export.files import write_files_atomic
from trainctl.export.onnx_graph import ExportError
from trainctl.export.walk import model_graph

FORMAT, VERSION = "trainctl-model", 1


def _dtype(t: torch.dtype) -> str:
    return str(t).removeprefix("torch.")


def describe(model, weights_file: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The JSON description (module docstring) of a built ``model``."""
    graph = model_graph(model)
    out_dtype = _dtype(model.variables[0].dtype) if model.variables else "float32"
    nodes = []
    for n in graph.nodes:
        entry: dict[str, Any] = {"name": n.name, "type": n.type, "inputs": list(n.inputs)}
        if n.shared_with:
            entry["shared_with"] = n.shared_with
        else:
            entry["options"] = {k: v for k, v in n.layer.config.model_dump(mode="json").items()
                                if k != "name"}
            entry["weights"] = {w.name.split("/", 1)[1]: {
                "tensor": w.name, "shape": list(w.shape), "dtype": _dtype(w.dtype),
                "trainable": bool(w.trainable)} for w in n.layer.weights}
        entry["output_shape"] = list(n.output_shape)
        entry["dtype"] = out_dtype
        nodes.append(entry)
    return {"format": FORMAT, "version": VERSION, "name": graph.name, "weights": weights_file,
            "inputs": [{"name": i.name, "shape": list(i.shape), "dtype": i.dtype,
                        **({"columns": list(i.columns)} if i.columns else {})}
                       for i in graph.inputs],
            "nodes": nodes,
            "outputs": [{"name": o, "shape": list(graph.shape_of(o)), "dtype": out_dtype}
                        for o in graph.outputs],
            "metadata": dict(metadata or {})}


def description_path(weights_path: str | Path) -> Path:
    """``model.json`` next to ``model.safetensors``."""
    return Path(weights_path).with_suffix(".json")


def export_portable(model, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write ``path`` (safetensors weights) and :func:`description_path` (the JSON), both
    atomically; returns the JSON's path. Raises ExportError when a file cannot be written."""
    from safetensors.torch import save

    path = Path(path)
    if description_path(path) == path:
        raise ExportError(f"{str(path)!r}: the weights file needs another suffix than .json "
                          f"(its description is written as {path.stem}.json)")
    tensors = {v.name: v.data.detach().to("cpu").contiguous() for v in model.variables}
    desc = describe(model, path.name, metadata)
    blob = save(tensors, metadata={"format": FORMAT})
    text = json.dumps(desc, indent=2) + "\n"
    write_files_atomic({path: blob, description_path(path): text.encode("utf-8")})
    return description_path(path)


def load_portable(json_path: str | Path, device: torch.device | str = "cpu"):
    """Rebuild the model a :func:`export_portable` JSON describes and load its weights
    (the safetensors file it names, next to it). Returns a built GraphModel.

    Raises ExportError for a file that is not such a description, SpecErrors for a graph
    that does not validate, CheckpointError for weights that do not fit.
    """
    from safetensors.torch import load_file

    from trainctl.graph.build import graph_model_from_plan
    from trainctl.spec import SpecDoc
    from trainctl.spec.kinds.dag import plan_graph

    json_path = Path(json_path)
    try:
        desc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {str(json_path)!r}: {exc}") from None
    if not isinstance(desc, dict) or desc.get("format") != FORMAT or desc.get("version") != VERSION:
        raise ExportError(f"{str(json_path)!r} is not a {FORMAT} description (version {VERSION})")
    section = {"inputs": desc["inputs"], "outputs": [o["name"] for o in desc["outputs"]],
               "nodes": [{"name": n["name"], "type": n["type"], "inputs": n["inputs"],
                          **({"shared_with": n["shared_with"]} if n.get("shared_with")
                             else n["options"])} for n in desc["nodes"]]}
    plan = plan_graph(SpecDoc(str(json_path), {"model": section}))
    model = graph_model_from_plan(plan, desc.get("name") or "model", device)
    weights_file = json_path.parent / desc["weights"]
    try:
        tensors = load_file(str(weights_file))
    except Exception as exc:  # OSError, or safetensors' own SafetensorError for a bad file
        raise CheckpointError(f"cannot read weights {str(weights_file)!r}: {exc}") from None
    model.load_state_dict(tensors)
    return model
