"""trainctl.spec: the spec-yaml.md cases, positions, validation messages, the spec schema."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import PositiveInt

from trainctl.errors import SpecErrors
from trainctl.spec import Config, Spec, SpecDoc, load_spec

SPEC = """\
name: digits-mlp
seed: 7
data:
  source: {type: digits}
  batch_size: 64
model:
  input_shape: [64]
  layers:
    - {type: dense, units: 128, activation: relu}
    - {type: dense, units: 10}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 1e-3}
train: {epochs: 30}
"""


def doc_of(text: str) -> SpecDoc:
    return SpecDoc.from_text(text, "s.yaml")


def messages(excinfo) -> list[str]:
    return [str(e) for e in excinfo.value.errors]


class Dense(Config):
    units: PositiveInt
    activation: str | None = None
    use_bias: bool = True
    padding: Literal["same", "valid"] = "same"


class Adam(Config):
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    nesterov: bool = False


# --- the cases of spec-yaml.md ----------------------------------------------------

def test_exponent_floats_reach_float_fields():
    doc = doc_of("optimizer: {type: adam, learning_rate: 1e-3, weight_decay: 5E-4}\n")
    adam = doc.validate(Adam, ("optimizer",))
    assert (adam.learning_rate, adam.weight_decay) == (0.001, 0.0005)


def test_no_is_false_for_a_boolean_field():
    doc = doc_of("optimizer: {type: sgd, nesterov: no}\n")
    assert doc.validate(Adam, ("optimizer",)).nesterov is False


def test_no_stays_a_string_for_a_string_field():
    spec = load_spec_text(SPEC.replace("name: digits-mlp", "name: NO"))
    assert spec.name == "NO"


@pytest.mark.parametrize("value, got", [("010", "10"), ("true", "true"), ("1e-3", "0.001")])
def test_string_field_never_takes_a_number_or_bool(value, got):
    with pytest.raises(SpecErrors) as exc:
        load_spec_text(SPEC.replace("name: digits-mlp", f"name: {value}"))
    assert messages(exc) == [
        f"s.yaml:1:7: name: expected a string, got {got} (quote it if you mean the text)"]


def test_unreadable_value_names_file_line_and_key():
    doc = doc_of("optimizer:\n  type: adam\n  learning_rate: fast\n")
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Adam, ("optimizer",))
    assert messages(exc) == ["s.yaml:3:18: optimizer.learning_rate: expected a number, got 'fast'"]


# --- positions --------------------------------------------------------------------

def test_positions_of_values_and_keys():
    doc = doc_of(SPEC)
    assert doc.locate(("seed",)) == (2, 7)
    assert doc.locate_key(("seed",)) == (2, 1)
    assert doc.locate(("model", "layers", 1)) == (10, 7)
    assert doc.locate(("model", "layers", 0, "units")) == (9, 28)
    assert doc.locate_key(("model", "layers", 0, "units")) == (9, 21)
    assert doc.locate(("model", "layers", 1, "nope", 3)) == (10, 7)  # nearest ancestor
    assert doc.locate(()) == (None, None)
    assert doc.locate(("absent",)) == (None, None)


def test_error_points_at_value_key_or_parent():
    doc = doc_of(SPEC)
    path = ("model", "layers", 0, "units")
    assert str(doc.error(path, "too big")) == "s.yaml:9:28: model.layers[0].units: too big"
    assert str(doc.error(path, "unknown field")) == \
        "s.yaml:9:21: model.layers[0].units: unknown field"
    assert str(doc.error(("data", "split"), "missing required field")) == \
        "s.yaml:3:1: data.split: missing required field"
    assert str(doc.error(("loss2",), "missing required field")) == \
        "s.yaml: loss2: missing required field"


# --- SpecDoc.validate messages ----------------------------------------------------

LAYER = "model:\n  layers:\n    - {type: dense, %s}\n"


@pytest.mark.parametrize("body, expected", [
    # the missing 'units' is the typo's consequence: only the typo is reported
    ("unist: 32", ["s.yaml:3:21: model.layers[0].unist: unknown field; did you mean 'units'?"]),
    ("units: 3, zzz: 1", ["s.yaml:3:31: model.layers[0].zzz: unknown field; valid fields: "
                          "units, activation, use_bias, padding, type"]),
    ("units: 3, typo: 1", ["s.yaml:3:31: model.layers[0].typo: unknown field; "
                           "did you mean 'type'?"]),
    ("units: ten", ["s.yaml:3:28: model.layers[0].units: expected an integer, got 'ten'"]),
    ("units: 2.5", ["s.yaml:3:28: model.layers[0].units: expected an integer, got 2.5"]),
    ("units: true", ["s.yaml:3:28: model.layers[0].units: expected an integer, got true"]),
    ("units: -3", ["s.yaml:3:28: model.layers[0].units: must be > 0, got -3"]),
    ("units: [1]", ["s.yaml:3:28: model.layers[0].units: expected an integer, got a list"]),
    ("units: 1, activation: 10", ["s.yaml:3:43: model.layers[0].activation: expected a "
                                  "string, got 10 (quote it if you mean the text)"]),
    ("units: 1, use_bias: maybe", ["s.yaml:3:41: model.layers[0].use_bias: expected true "
                                   "or false, got 'maybe'"]),
    ("units: 1, padding: foo", ["s.yaml:3:40: model.layers[0].padding: expected one of "
                                "'same', 'valid', got 'foo'"]),
])
def test_validate_messages(body, expected):
    with pytest.raises(SpecErrors) as exc:
        doc_of(LAYER % body).validate(Dense, ("model", "layers", 0))
    assert messages(exc) == expected


def test_validate_returns_the_config_without_type():
    dense = doc_of(LAYER % "units: 4, use_bias: off").validate(Dense, ("model", "layers", 0))
    assert dense.model_dump() == {"units": 4, "activation": None, "use_bias": False,
                                  "padding": "same"}


def test_validate_bare_name_and_non_mapping():
    assert doc_of("optimizer: adam\n").validate(Adam, ("optimizer",)).learning_rate == 0.001
    with pytest.raises(SpecErrors) as exc:
        doc_of("optimizer: [adam]\n").validate(Adam, ("optimizer",))
    assert messages(exc) == ["s.yaml:1:12: optimizer: expected a mapping, got a list"]


def test_validate_missing_required_field_in_nested_mapping():
    with pytest.raises(SpecErrors) as exc:
        doc_of("a:\n  b: {activation: x}\n").validate(Dense, ("a", "b"))
    assert messages(exc) == ["s.yaml:2:3: a.b.units: missing required field"]


def test_bool_never_becomes_a_number():
    with pytest.raises(SpecErrors) as exc:
        doc_of("learning_rate: true\n").validate(Adam)
    assert messages(exc) == ["s.yaml:1:16: learning_rate: expected a number, got true"]


def test_union_errors_are_merged():
    class Pad(Config):
        padding: int | Literal["same"] = 0

    with pytest.raises(SpecErrors) as exc:
        doc_of("padding: [1]\n").validate(Pad)
    assert messages(exc) == ["s.yaml:1:10: padding: expected an integer or 'same', got a list"]


# --- the spec schema --------------------------------------------------------------

def load_spec_text(text: str) -> Spec:
    return Spec.from_doc(doc_of(text))


def test_spec_typed_access_and_defaults():
    spec = load_spec_text(SPEC)
    assert (spec.name, spec.seed, spec.device, spec.format) == ("digits-mlp", 7, "auto", 1)
    assert spec.data.source == {"type": "digits"}
    assert (spec.data.batch_size, spec.data.shuffle, spec.data.drop_remainder) == (64, True, False)
    assert (spec.data.split.validation, spec.data.split.test) == (0.1, 0.2)
    assert spec.model.input_shape == [64]
    assert spec.model.layers[0] == {"type": "dense", "units": 128, "activation": "relu"}
    assert spec.loss == {"type": "sparse_categorical_crossentropy", "from_logits": True}
    assert spec.optimizer == {"type": "adam", "learning_rate": 0.001}
    assert spec.metrics == ["accuracy"]
    assert (spec.train.epochs, spec.train.eval_batch_size) == (30, 256)
    assert spec.doc.file == "s.yaml"


def test_to_dict_fills_defaults():
    text = ("name: m\ndata: {source: {type: digits}}\n"
            "model: {input_shape: [4], layers: [{type: dense, units: 1}]}\n"
            "loss: mean_squared_error\noptimizer: sgd\n")
    got = load_spec_text(text).to_dict()
    expected = {
        "name": "m", "format": 1, "seed": 0, "device": "auto",
        "data": {"source": {"type": "digits"}, "split": {"validation": 0.1, "test": 0.2},
                 "batch_size": 32, "shuffle": True, "drop_remainder": False,
                 "standardize": False},
        "loss": {"type": "mean_squared_error"}, "metrics": [], "optimizer": {"type": "sgd"}}
    assert {key: got[key] for key in expected} == expected  # other sections test their own
    assert got["model"]["input_shape"] == [4] and got["model"]["layers"] == [
        {"type": "dense", "units": 1}]
    assert (got["train"]["epochs"], got["train"]["eval_batch_size"]) == (10, 256)


def test_to_yaml_round_trips():
    spec = load_spec_text(SPEC.replace("digits-mlp", "'1e-3'"))
    again = load_spec_text(spec.to_yaml())
    assert again.to_dict() == spec.to_dict()
    assert again.name == "1e-3"
    assert yaml.safe_load(spec.to_yaml()) == spec.to_dict()


def test_with_overrides():
    spec = load_spec_text(SPEC)
    new = spec.with_overrides(seed=3, epochs=5, device="cpu")
    assert (new.seed, new.train.epochs, new.device) == (3, 5, "cpu")
    assert (spec.seed, spec.train.epochs, spec.device) == (7, 30, "auto")
    assert new.doc.get(("train", "epochs")) == 5 and spec.doc.get(("train", "epochs")) == 30
    assert new.doc.where(("seed",)).file == "--seed 3"  # the overridden document records it
    assert spec.with_overrides().to_dict() == spec.to_dict()
    with pytest.raises(SpecErrors) as exc:
        spec.with_overrides(epochs=0)
    assert messages(exc) == [
        "--epochs 0: train.epochs: must be > 0, got 0 (given on the command line)"]


def test_every_schema_error_is_reported_in_file_order():
    text = """\
name: x
format: 2
seed: -1
data:
  source: {typo: digits}
  split: {validation: 0.5, test: 0.6}
  batch_size: 0
model:
  input_shape: [true, 0]
  layers: []
loss: {type: 5}
optimizer: [adam]
metrics: accuracy
train: {epochs: 1.5, epoch: 3}
"""
    with pytest.raises(SpecErrors) as exc:
        load_spec_text(text)
    assert messages(exc) == [
        "s.yaml:2:9: format: unsupported spec format 2; this trainctl reads format 1",
        "s.yaml:3:7: seed: must be >= 0, got -1",
        "s.yaml:5:3: data.source.type: missing required field",
        "s.yaml:6:10: data.split: validation + test must be < 1, got 0.5 + 0.6",
        "s.yaml:7:15: data.batch_size: must be > 0, got 0",
        "s.yaml:9:17: model.input_shape[0]: expected an integer, got true",
        "s.yaml:9:23: model.input_shape[1]: must be > 0, got 0",
        "s.yaml:10:11: model.layers: must have at least 1 item, got 0",
        "s.yaml:11:14: loss.type: expected a name, got 5",
        "s.yaml:12:12: optimizer: expected a name or a mapping with a 'type', got a list",
        "s.yaml:13:10: metrics: expected a list, got 'accuracy'",
        "s.yaml:14:17: train.epochs: expected an integer, got 1.5",
        "s.yaml:14:22: train.epoch: unknown field; did you mean 'epochs'?",
    ]


def test_missing_top_level_sections_have_no_line():
    with pytest.raises(SpecErrors) as exc:
        load_spec_text("name: x\nmodel:\n  layers:\n    - dense\n")
    assert messages(exc) == [
        "s.yaml:2:1: model.input_shape: missing required field",
        "s.yaml:4:7: model.layers[0]: expected a mapping with a 'type', got 'dense'",
        "s.yaml: data: missing required field",
        "s.yaml: loss: missing required field",
        "s.yaml: optimizer: missing required field",
    ]


def test_load_spec_from_file(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    assert spec.doc.file == str(path)
    assert spec.optimizer["learning_rate"] == 0.001


def test_spec_package_imports_no_torch_numpy_or_other_trainctl_packages():
    allowed = {"trainctl.errors", "trainctl.registry"}
    root = Path(__file__).resolve().parents[1] / "trainctl" / "spec"
    for file in root.glob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in {"torch", "numpy"}, (file.name, name)
                if top == "trainctl":
                    assert name in allowed or name.startswith("trainctl.spec"), (file.name, name)
