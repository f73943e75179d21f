"""describe_errors: an unknown key whose suggestion is a missing required field of the
same mapping is reported once, as the unknown field (the missing field is its consequence).
"""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError

from trainctl.spec.messages import MISSING, describe_errors


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dense(Strict):
    units: PositiveInt
    activation: str | None = None


class Pair(Strict):
    units: PositiveInt
    rate: float


class Outer(Strict):
    name: str
    layer: Dense
    layers: list[Dense] = []


def problems(model: type[BaseModel], data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return describe_errors(exc.value, data, model)


@pytest.mark.parametrize("model, data, expected", [
    # the case of specs-bad/unknown_field.yaml: only the typo is reported
    (Dense, {"unist": 32, "activation": "relu"},
     [(("unist",), "unknown field; did you mean 'units'?")]),
    # two typos of one missing field: both typos, still no missing error
    (Dense, {"unist": 32, "unit": 3},
     [(("unist",), "unknown field; did you mean 'units'?"),
      (("unit",), "unknown field; did you mean 'units'?")]),
    # another required field that no unknown key stands for is still missing
    (Pair, {"unist": 32},
     [(("rate",), MISSING), (("unist",), "unknown field; did you mean 'units'?")]),
    # no close suggestion: the missing field and the unknown key are both reported
    (Dense, {"zzz": 1},
     [(("units",), MISSING), (("zzz",), "unknown field; valid fields: units, activation")]),
    # the suggested field is given: nothing is missing, only the unknown key
    (Dense, {"units": 3, "unitss": 4},
     [(("unitss",), "unknown field; did you mean 'units'?")]),
    # plain missing field without unknown keys
    (Dense, {"activation": "relu"}, [(("units",), MISSING)]),
])
def test_unknown_key_hides_the_missing_field_it_stands_for(model, data, expected):
    assert problems(model, data) == expected


def test_only_the_same_mapping_counts():
    # 'unist' inside layers[0] stands for layers[0].units, not for layer.units
    data = {"name": "n", "layer": {"activation": "relu"},
            "layers": [{"unist": 3}, {"units": 2}]}
    assert problems(Outer, data) == [
        (("layer", "units"), MISSING),
        (("layers", 0, "unist"), "unknown field; did you mean 'units'?"),
    ]


def test_nested_mapping_typo_reports_one_error():
    data = {"name": "n", "layer": {"unist": 3}}
    assert problems(Outer, data) == [
        (("layer", "unist"), "unknown field; did you mean 'units'?")]


def test_top_level_typo_of_a_required_field():
    data = {"nmae": "n", "layer": {"units": 1}}
    assert problems(Outer, data) == [(("nmae",), "unknown field; did you mean 'name'?")]
