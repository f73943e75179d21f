"""``trainctl schema``: a valid JSON Schema (draft 2020-12) that every example spec passes,
that rejects what the loader rejects, and whose committed copy is up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from trainctl.cli.app import app
from trainctl.spec.yaml_loader import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "trainctl.schema.json"
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
COMMENT = "# yaml-language-server: $schema=../trainctl.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def validator(schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_up_to_date(schema):
    assert json.loads(COMMITTED.read_text()) == schema, (
        "trainctl.schema.json is stale: run `trainctl schema > trainctl.schema.json`")


def test_every_reference_resolves(schema):
    refs = set(re.findall(r'"#/\$defs/([^"]+)"', json.dumps(schema)))
    assert refs and refs <= set(schema["$defs"])


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_specs_carry_the_comment_and_pass(validator, path):
    text = path.read_text()
    assert text.splitlines()[0] == COMMENT
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(
        parse_yaml(text, str(path))[0])]
    assert errors == []


BASE = parse_yaml((ROOT / "specs" / "iris_mlp.yaml").read_text(), "iris")[0]


@pytest.mark.parametrize("path, value", [
    (("model", "layers", 0, "unist"), 3),                 # unknown option of a layer
    (("model", "layers", 0, "type"), "dens"),             # unknown layer type
    (("model", "layers", 0, "units"), "ten"),
    (("model", "layers", 0, "activation"), "rleu"),
    (("model", "layers", 0, "kernel_initializer"), "he_norml"),
    (("optimizer", "learning_rate"), "fast"),
    (("optimizer", "type"), "adma"),
    (("loss",), "mse"),                                   # not a registered loss name
    (("metrics",), ["acuracy"]),
    (("data", "source", "type"), "irsi"),
    (("data", "shuffle"), "maybe"),
    (("seed",), -1),
    (("nmae",), "x"),                                     # unknown top-level key
])
def test_schema_rejects_what_the_loader_rejects(validator, path, value):
    data = json.loads(json.dumps(BASE))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert not validator.is_valid(data)


@pytest.mark.parametrize("path, value", [
    (("data", "shuffle"), "no"),                          # a YAML 1.1 word the loader accepts
    (("loss",), "mean_squared_error"),                    # a bare name
    (("optimizer",), {"type": "sgd", "momentum": 0.9, "nesterov": True}),
    (("base",), "other.yaml"),
    (("model", "layers", 0, "activation"), None),
])
def test_schema_accepts_the_spec_forms(validator, path, value):
    data = json.loads(json.dumps(BASE))
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    assert validator.is_valid(data), [e.message for e in validator.iter_errors(data)]
