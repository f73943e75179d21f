"""``--set KEY.PATH=VALUE`` overrides: the path grammar, YAML 1.2 values, application to
the document (copy on write, names in lists, created mappings), errors naming the override,
and the dedicated flags going through the same path."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec import Config, Spec, SpecDoc, load_doc, load_spec
from trainctl.spec.overrides import (Override, apply_override, flag_overrides, parse_key_path,
                                     parse_override)

SPEC = """\
name: ov
seed: 0
data:
  source: {type: digits}
model:
  input_shape: [64]
  layers:
    - {type: dense, units: 32, activation: relu}
    - {type: dense, units: 10, name: head}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: {type: adam, learning_rate: 0.001}
"""


class Adam(Config):
    learning_rate: float
    beta_1: float = 0.9


def messages(excinfo) -> list[str]:
    return [str(e) for e in excinfo.value.errors]


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("text, path", [
    ("seed", ("seed",)),
    ("optimizer.learning_rate", ("optimizer", "learning_rate")),
    ("model.layers[0].units", ("model", "layers", 0, "units")),
    ("model.layers[-1]", ("model", "layers", -1)),
    ("a[1][2].b", ("a", 1, 2, "b")),
    ("model.nodes.conv-1.filters", ("model", "nodes", "conv-1", "filters")),
])
def test_key_paths(text, path):
    assert parse_key_path(text) == path


@pytest.mark.parametrize("text", ["", "a..b", "a.", ".a", "a[x]", "a[1", "1a", "a b", "a[1]x"])
def test_bad_key_paths(text):
    with pytest.raises(ValueError):
        parse_key_path(text)


@pytest.mark.parametrize("text, value", [
    ("a=3e-4", 3e-4), ("a=5E-4", 5e-4), ("a=010", 10), ("a=no", "no"), ("a=off", "off"),
    ("a=true", True), ("a=", None), ("a=~", None), ("a=[1, 8, 8]", [1, 8, 8]),
    ("a={type: sgd}", {"type": "sgd"}), ("a='3'", "3"), ("a=b=c", "b=c"), ("a=12:30", "12:30"),
])
def test_values_are_read_as_yaml_1_2(text, value):
    ov = parse_override(text)
    assert ov.path == ("a",) and ov.value == value and type(ov.value) is type(value)
    assert ov.label == f"--set {text}"


@pytest.mark.parametrize("text, message", [
    ("seed", "--set seed: expected KEY=VALUE, e.g. optimizer.learning_rate=3e-4"),
    ("a..b=1", "--set a..b=1: bad key path: '' is not a key"),
    ("a=[1, 2", "--set a=[1, 2: cannot read the value: invalid YAML: "),
    ("a={x: 1, x: 2}", "--set a={x: 1, x: 2}: cannot read the value: x: duplicate key"),
])
def test_unreadable_overrides(text, message):
    with pytest.raises(SpecError) as exc:
        parse_override(text)
    assert str(exc.value).startswith(message)


def test_apply_copies_on_write_and_reports_the_concrete_path():
    shared = [1, 2]
    data = {"a": {"b": shared}, "c": shared}
    new, path = apply_override(data, Override(("a", "b", 0), 9, "--set a.b[0]=9"))
    assert new == {"a": {"b": [9, 2]}, "c": [1, 2]} and path == ("a", "b", 0)
    assert data == {"a": {"b": [1, 2]}, "c": [1, 2]} and shared == [1, 2]
    new, path = apply_override(data, Override(("x", "y", "z"), 1, "--set x.y.z=1"))
    assert new["x"] == {"y": {"z": 1}} and path == ("x", "y", "z")


def test_list_items_by_name_or_index():
    data = {"nodes": [{"name": "conv1", "filters": 8}, {"name": "head", "units": 2}]}
    new, path = apply_override(data, Override(("nodes", "head", "units"), 5, "l"))
    assert new["nodes"][1]["units"] == 5 and path == ("nodes", 1, "units")
    new, path = apply_override(data, Override(("nodes", -2, "filters"), 4, "l"))
    assert new["nodes"][0]["filters"] == 4 and path == ("nodes", 0, "filters")


@pytest.mark.parametrize("path, message", [
    (("nodes", 2, "units"), "l: index 2 is out of range: nodes has 2 items"),
    (("nodes", "haed", "units"), "l: nodes has no item named 'haed'; did you mean 'head'?"),
    (("nodes", "zzz"), "l: nodes has no item named 'zzz'; named items: conv1, head"),
    (("plain", "x", "y"), "l: plain has no item named 'x'; its items have no names (use an "
                          "index, e.g. [0])"),
    (("seed", "x"), "l: cannot set seed.x: seed is 3, not a mapping or a list"),
    (("nodes", 0, "filters", "x"), "l: cannot set nodes[0].filters.x: nodes[0].filters is 8, "
                                   "not a mapping or a list"),
    (("seed", 0), "l: cannot set seed[0]: seed is 3, not a mapping or a list"),
])
def test_paths_that_cannot_be_followed(path, message):
    data = {"nodes": [{"name": "conv1", "filters": 8}, {"name": "head", "units": 2}],
            "plain": [1, 2], "seed": 3}
    with pytest.raises(SpecError) as exc:
        apply_override(data, Override(path, 1, "l"))
    assert str(exc.value) == message


def test_overrides_reach_the_spec_typed_by_the_schema(spec_file):
    spec = load_spec(spec_file, ["optimizer.learning_rate=3e-4", "data.batch_size=128",
                                 "model.layers[0].units=64", "model.layers.head.units=10",
                                 "train.epochs=3", "seed=010", "model.input_shape=[8, 8]"])
    assert spec.optimizer == {"type": "adam", "learning_rate": 3e-4}
    assert (spec.data.batch_size, spec.train.epochs, spec.seed) == (128, 3, 10)
    assert spec.model.layers[0]["units"] == 64 and spec.model.input_shape == [8, 8]
    assert load_spec(spec_file).optimizer["learning_rate"] == 0.001  # the file is unchanged


def test_errors_name_the_override(spec_file):
    doc = load_doc(spec_file, ["optimizer.learning_rate=fast"])
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Adam, ("optimizer",))
    assert messages(exc) == ["--set optimizer.learning_rate=fast: expected a number, got 'fast'"]
    doc = load_doc(spec_file, ["optimizer.learnin_rate=0.1"])
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Adam, ("optimizer",))
    assert messages(exc) == [
        "--set optimizer.learnin_rate=0.1: unknown field; did you mean 'learning_rate'?"]
    doc = load_doc(spec_file, ["optimizer={type: adam, beta_1: x}"])
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Adam, ("optimizer",))
    assert messages(exc) == [
        "--set optimizer={type: adam, beta_1: x}: optimizer.learning_rate: missing required field",
        "--set optimizer={type: adam, beta_1: x}: optimizer.beta_1: expected a number, got 'x'"]


def test_schema_errors_of_overrides_and_file_together(spec_file):
    with pytest.raises(SpecErrors) as exc:
        load_spec(spec_file, ["trian.epochs=3", "seed=-2", "data.batch_size=big"])
    assert messages(exc) == [  # in the order given
        "--set trian.epochs=3: trian: unknown field; did you mean 'train'?",
        "--set seed=-2: must be >= 0, got -2",
        "--set data.batch_size=big: expected an integer, got 'big'"]


def test_every_bad_override_is_reported(spec_file):
    with pytest.raises(SpecErrors) as exc:
        load_doc(spec_file, ["nope", "model.layers[5].units=1", "seed.x=1"])
    assert messages(exc) == [
        "--set nope: expected KEY=VALUE, e.g. optimizer.learning_rate=3e-4",
        "--set model.layers[5].units=1: index 5 is out of range: model.layers has 2 items",
        "--set seed.x=1: cannot set seed.x: seed is 0, not a mapping or a list"]


def test_later_overrides_win_and_positions_follow(spec_file):
    doc = load_doc(spec_file, ["model.layers[0]={type: dense, units: 5}", "seed=4", "seed=5"])
    assert doc.data["seed"] == 5 and doc.where(("seed",)).file == "--set seed=5"
    assert doc.data["model"]["layers"][0] == {"type": "dense", "units": 5}
    assert doc.where(("model", "layers", 0, "units")).file == "--set model.layers[0]={type: dense, units: 5}"
    assert doc.where(("model", "layers", 1, "units")).line == 9  # the file's
    assert doc.files == [str(spec_file), "--set model.layers[0]={type: dense, units: 5}",
                         "--set seed=4", "--set seed=5"]


def test_flags_and_set_take_the_same_path(spec_file):
    spec = load_spec(spec_file)
    by_flags = spec.with_overrides(seed=3, epochs=2, device="cpu")
    by_set = spec.with_overrides(["seed=3", "train.epochs=2", "device=cpu"])
    assert by_flags.to_dict() == by_set.to_dict() == load_spec(
        spec_file, flag_overrides(seed=3, epochs=2, device="cpu")).to_dict()
    assert [o.label for o in flag_overrides(seed=None, epochs=2)] == ["--epochs 2"]
    with pytest.raises(SpecErrors) as exc:
        spec.with_overrides(["seed=x"], device="")
    assert messages(exc) == ["--set seed=x: expected an integer, got 'x'",
                             "--device : device: must not be empty (given on the command line)"]


def test_a_spec_built_in_code_takes_overrides():
    built = Spec.model_validate(SpecDoc.from_text(SPEC, "<spec>").data)
    assert built.doc is None
    new = built.with_overrides(["seed=9"])
    assert new.seed == 9 and new.to_dict() == {**built.to_dict(), "seed": 9}
