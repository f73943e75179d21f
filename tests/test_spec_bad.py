"""The bad specs of tests/fixtures/specs_bad that trainctl.spec detects (or helps locate).

Each case checks the line and the words listed for that file in ``expected.txt``.
Errors that need other packages (layer types, shapes, class counts) are checked there;
here those specs must load, and the per-thing configs are stood in for by small Configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import PositiveInt

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec import Config, load_doc, load_spec

BAD = Path(__file__).parent / "fixtures" / "specs_bad"


def expected(name: str) -> tuple[int | None, list[str]]:
    """(line, words) for ``name`` from expected.txt; line None for ``-``."""
    for row in (BAD / "expected.txt").read_text().splitlines():
        if row.startswith(name + ":"):
            line, *words = [part.strip() for part in row.split(":", 1)[1].split("|")]
            return (None if line == "-" else int(line)), [w for w in words if w]
    raise KeyError(name)


def assert_reported(error: SpecError, name: str) -> None:
    line, words = expected(name)
    assert error.line == line
    assert error.file == str(BAD / name)
    for word in words:
        assert word.lower() in str(error).lower()


class Dense(Config):
    units: PositiveInt
    activation: str | None = None
    use_bias: bool = True


class Adam(Config):
    learning_rate: float


def test_expected_rows_are_read():
    assert expected("duplicate_key.yaml") == (3, ["seed", "2"])
    assert expected("missing_loss.yaml") == (None, ["loss"])
    assert expected("yaml_syntax.yaml") == (7, [])


def test_yaml_syntax():
    with pytest.raises(SpecError) as exc:
        load_spec(BAD / "yaml_syntax.yaml")
    assert_reported(exc.value, "yaml_syntax.yaml")
    assert str(exc.value) == (f"{BAD / 'yaml_syntax.yaml'}:7:11: invalid YAML: "
                              "mapping values are not allowed here")


def test_duplicate_key():
    with pytest.raises(SpecErrors) as exc:
        load_spec(BAD / "duplicate_key.yaml")
    assert len(exc.value.errors) == 1
    assert_reported(exc.value.errors[0], "duplicate_key.yaml")
    assert str(exc.value) == (f"{BAD / 'duplicate_key.yaml'}:3:1: seed: duplicate key "
                              "(first given on line 2)")


def test_missing_loss():
    with pytest.raises(SpecErrors) as exc:
        load_spec(BAD / "missing_loss.yaml")
    assert len(exc.value.errors) == 1
    assert_reported(exc.value.errors[0], "missing_loss.yaml")
    assert str(exc.value) == f"{BAD / 'missing_loss.yaml'}: loss: missing required field"


@pytest.mark.parametrize("name, config, path, message", [
    ("unknown_field.yaml", Dense, ("model", "layers", 0),
     "10:21: model.layers[0].unist: unknown field; did you mean 'units'?"),
    ("wrong_field_type.yaml", Dense, ("model", "layers", 0),
     "10:28: model.layers[0].units: expected an integer, got 'ten'"),
    ("negative_units.yaml", Dense, ("model", "layers", 0),
     "10:28: model.layers[0].units: must be > 0, got -3"),
    ("learning_rate_not_a_number.yaml", Adam, ("optimizer",),
     "14:40: optimizer.learning_rate: expected a number, got 'fast'"),
])
def test_config_errors_located_by_doc_validate(name, config, path, message):
    spec = load_spec(BAD / name)  # the spec level itself is fine
    with pytest.raises(SpecErrors) as exc:
        spec.doc.validate(config, path)
    found = [e for e in exc.value.errors if message in str(e)]
    assert [str(e) for e in found] == [f"{BAD / name}:{message}"]
    assert_reported(found[0], name)


def test_unknown_field_reports_only_the_typo_not_the_missing_field_it_stands_for():
    with pytest.raises(SpecErrors) as exc:
        load_doc(BAD / "unknown_field.yaml").validate(Dense, ("model", "layers", 0))
    assert [str(e) for e in exc.value.errors] == [
        f"{BAD / 'unknown_field.yaml'}:10:21: model.layers[0].unist: unknown field; "
        "did you mean 'units'?",
    ]


@pytest.mark.parametrize("name, check", [
    ("unknown_layer_type.yaml", lambda s: s.model.layers[1]["type"] == "dens"),
    ("input_shape_vs_data.yaml", lambda s: s.model.input_shape == [32]),
    ("too_few_classes.yaml", lambda s: s.model.layers[1] == {"type": "dense", "units": 5}),
])
def test_specs_whose_errors_other_packages_find_load_here(name, check):
    assert check(load_spec(BAD / name))


def test_doc_locates_the_values_other_packages_report():
    doc = load_doc(BAD / "unknown_layer_type.yaml")
    assert doc.locate(("model", "layers", 1, "type")) == (11, 14)
    assert str(doc.error(("model", "layers", 1, "type"), "unknown layer 'dens'")) == (
        f"{BAD / 'unknown_layer_type.yaml'}:11:14: model.layers[1].type: unknown layer 'dens'")
    doc = load_doc(BAD / "input_shape_vs_data.yaml")
    assert doc.locate(("model", "input_shape")) == (8, 16)
