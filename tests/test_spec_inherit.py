"""``base: other.yaml``: deep merge (maps merged, lists replaced), paths relative to the
naming spec's folder, chains, cycles, and errors located in the file a value came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import PositiveInt

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec import Config, load_doc, load_spec
from trainctl.spec.inherit import deep_merge, merge_positions

BASE = """\
name: base-run
seed: 1
data:
  source: {type: digits}
  split: {validation: 0.1, test: 0.2}
  batch_size: 64
model:
  input_shape: [64]
  layers:
    - {type: dense, units: 32, activation: relu}
    - {type: dense, units: 10}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.001}
train: {epochs: 5}
"""


class Dense(Config):
    units: PositiveInt
    activation: str | None = None


class Adam(Config):
    learning_rate: float
    beta_1: float = 0.9


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def messages(excinfo) -> list[str]:
    return [str(e) for e in excinfo.value.errors]


def test_deep_merge_merges_mappings_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "l": [1, 2, 3], "s": "b", "m": {"k": 1}}
    child = {"a": {"y": {"q": 20}, "z": 3}, "l": [9], "m": [1], "new": None}
    replaced: list = []
    merged = deep_merge(base, child, (), replaced)
    assert merged == {"a": {"x": 1, "y": {"p": 1, "q": 20}, "z": 3}, "l": [9], "s": "b",
                      "m": [1], "new": None}
    assert sorted(replaced) == [("a", "y", "q"), ("l",), ("m",)]
    assert base["a"]["y"] == {"p": 1, "q": 2} and base["l"] == [1, 2, 3]  # untouched


def test_merge_positions_drops_replaced_subtrees():
    base = {("l",): 1, ("l", 0): 2, ("l", 1): 3, ("a",): 4, ("a", "x"): 5, ("lx",): 6}
    child = {("l",): 10, ("l", 0): 11, ("a",): 12}
    assert merge_positions(base, child, [("l",)]) == {
        ("l",): 10, ("l", 0): 11, ("a",): 12, ("a", "x"): 5, ("lx",): 6}


def test_child_values_win_maps_merge_lists_replace(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml", """\
base: base.yaml
name: child-run
optimizer: {learning_rate: 0.01}
model:
  layers:
    - {type: dense, units: 10}
""")
    spec = load_spec(child)
    assert spec.name == "child-run" and spec.seed == 1
    assert spec.optimizer == {"type": "adam", "learning_rate": 0.01}
    assert spec.model.input_shape == [64]  # merged from the base's model mapping
    assert spec.model.layers == [{"type": "dense", "units": 10}]  # the child's list only
    assert "base" not in spec.to_dict() and spec.doc.file == str(child)
    assert spec.doc.files == [str(child), str(tmp_path / "base.yaml")]


def test_each_value_is_located_in_its_own_file(tmp_path):
    base = write(tmp_path / "base.yaml", BASE.replace("units: 32", "unist: 32"))
    child = write(tmp_path / "child.yaml", "base: base.yaml\noptimizer: {learning_rate: fast}\n")
    doc = load_doc(child)
    assert doc.where(("model", "layers", 0, "unist")).file == str(base)
    assert doc.locate(("model", "layers", 0)) == (10, 7)
    assert doc.where(("optimizer", "learning_rate")) == (str(child), 2, 28, False, "")
    assert doc.where(("optimizer", "type")).file == str(base)
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Dense, ("model", "layers", 0))
    assert messages(exc) == [
        f"{base}:10:21: model.layers[0].unist: unknown field; did you mean 'units'?"]
    with pytest.raises(SpecErrors) as exc:
        doc.validate(Adam, ("optimizer",))
    assert messages(exc) == [
        f"{child}:2:28: optimizer.learning_rate: expected a number, got 'fast'"]


def test_schema_errors_of_both_files_are_reported_together_child_first(tmp_path):
    base = write(tmp_path / "base.yaml", BASE.replace("seed: 1", "seed: -1"))
    child = write(tmp_path / "child.yaml", "base: base.yaml\ntrain: {epochs: 0}\n")
    with pytest.raises(SpecErrors) as exc:
        load_spec(child)
    assert messages(exc) == [
        f"{child}:2:17: train.epochs: must be > 0, got 0",
        f"{base}:2:7: seed: must be >= 0, got -1"]


def test_a_child_list_replacing_a_base_list_takes_its_own_positions(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(tmp_path / "child.yaml",
                  "base: base.yaml\nmodel:\n  layers:\n    - {type: dense, units: -1}\n")
    doc = load_doc(child)
    assert doc.where(("model", "layers", 0, "units")) == (str(child), 4, 28, False, "")
    assert doc.where(("model", "layers", 1)).file == str(child)  # no stale base entry
    assert doc.where(("model", "input_shape")).file == str(tmp_path / "base.yaml")


def test_chain_is_resolved_relative_to_each_spec_folder(tmp_path):
    write(tmp_path / "common" / "root.yaml", BASE)
    write(tmp_path / "common" / "mid.yaml", "base: root.yaml\nseed: 2\ntrain: {epochs: 7}\n")
    child = write(tmp_path / "exp" / "a" / "child.yaml",
                  "base: ../../common/mid.yaml\nseed: 3\n")
    spec = load_spec(child)
    assert (spec.seed, spec.train.epochs, spec.name) == (3, 7, "base-run")
    assert spec.doc.files == [str(child), str(tmp_path / "common" / "mid.yaml"),
                              str(tmp_path / "common" / "root.yaml")]


def test_relative_spec_path_gives_readable_base_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "specs" / "base.yaml", BASE.replace("seed: 1", "seed: x"))
    write(tmp_path / "specs" / "child.yaml", "base: ./base.yaml\n")
    with pytest.raises(SpecErrors) as exc:
        load_spec("specs/child.yaml")
    assert messages(exc) == ["specs/base.yaml:2:7: seed: expected an integer, got 'x'"]


def test_cycle_names_the_chain(tmp_path):
    a = write(tmp_path / "a.yaml", "base: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "name: b\nbase: sub/../a.yaml\n")
    with pytest.raises(SpecErrors) as exc:
        load_doc(a)
    assert messages(exc) == [
        f"{tmp_path / 'b.yaml'}:2:7: base: inheritance cycle: "
        f"{a} -> {tmp_path / 'b.yaml'} -> {a}"]


def test_a_spec_that_is_its_own_base(tmp_path):
    a = write(tmp_path / "a.yaml", "base: a.yaml\n")
    with pytest.raises(SpecErrors) as exc:
        load_doc(a)
    assert messages(exc) == [f"{a}:1:7: base: inheritance cycle: {a} -> {a}"]


@pytest.mark.parametrize("text, message", [
    ("base: nope.yaml\n", "base spec '{d}/nope.yaml' not found"),
    ("base: sub\n", "base spec '{d}/sub' is a directory"),
    ("base: [a.yaml]\n", "expected the file name of a base spec, got a list"),
    ("base: ''\n", "expected the file name of a base spec, got ''"),
])
def test_bad_base_is_located_at_the_base_key(tmp_path, text, message):
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "child.yaml", "name: x\n" + text)
    with pytest.raises(SpecErrors) as exc:
        load_doc(child)
    assert messages(exc) == [f"{child}:2:7: base: " + message.format(d=tmp_path)]


def test_errors_reading_a_base_name_the_base_file(tmp_path):
    base = write(tmp_path / "base.yaml", "name: a\nname: b\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\n")
    with pytest.raises(SpecErrors) as exc:
        load_doc(child)
    assert messages(exc) == [f"{base}:2:1: name: duplicate key (first given on line 1)"]
    write(tmp_path / "base.yaml", "- a list\n")
    with pytest.raises(SpecError) as one:
        load_doc(child)
    assert str(one.value) == f"{base}: the top level must be a mapping of spec fields, got a list"


def test_too_long_a_chain(tmp_path):
    for i in range(20):
        write(tmp_path / f"s{i}.yaml", f"base: s{i + 1}.yaml\n")
    write(tmp_path / "s20.yaml", BASE)
    with pytest.raises(SpecErrors) as exc:
        load_doc(tmp_path / "s0.yaml")
    assert messages(exc) == [f"{tmp_path / 's16.yaml'}:1:7: base: more than 16 bases in a chain"]


def test_aliases_in_a_base_are_not_changed_through_the_child(tmp_path):
    write(tmp_path / "base.yaml", BASE.replace("metrics: [accuracy]", "metrics: &m [accuracy]")
          + "x_extra: *m\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nmetrics: []\n")
    doc = load_doc(child)
    assert doc.data["metrics"] == [] and doc.data["x_extra"] == ["accuracy"]
