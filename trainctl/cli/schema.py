"""``trainctl schema > trainctl.schema.json``: the JSON Schema of a spec, for editors."""

from __future__ import annotations

import json

import typer


def schema_command() -> None:
    """Print the JSON Schema of a spec (for yaml-language-server: put
    ``# yaml-language-server: $schema=PATH/trainctl.schema.json`` on a spec's first line)."""
    from trainctl.data import sources
    from trainctl.data.spec_steps import pipeline_steps
    from trainctl.spec.jsonschema import spec_json_schema

    typer.echo(json.dumps(spec_json_schema(sources, pipeline_steps), indent=2, ensure_ascii=False))
