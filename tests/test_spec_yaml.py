"""trainctl.spec YAML reading: YAML 1.2 scalars, duplicate keys, file-level errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainctl.errors import SpecError, SpecErrors
from trainctl.spec import SpecDoc, load_doc, load_spec, render_path
from trainctl.spec.yaml_loader import dump_yaml, parse_yaml


def doc_of(text: str) -> SpecDoc:
    return SpecDoc.from_text(text, "s.yaml")


def messages(excinfo) -> list[str]:
    return [str(e) for e in excinfo.value.errors]


# --- YAML 1.2 core-schema scalars -------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("1e-3", 0.001), ("5E-4", 0.0005), ("1e+3", 1000.0), (".5", 0.5), ("-2.5e1", -25.0),
    ("1.", 1.0), ("010", 10), ("+12", 12), ("0x1F", 31), ("0o17", 15), ("-7", -7),
    ("true", True), ("False", False), ("TRUE", True),
    ("no", "no"), ("off", "off"), ("yes", "yes"), ("on", "on"), ("NO", "NO"), ("y", "y"),
    ("12:30", "12:30"), ("2024-01-01", "2024-01-01"), ("1_000", "1_000"), ("0b101", "0b101"),
    ("~", None), ("null", None), ("NULL", None), ("", None), ("'010'", "010"),
])
def test_scalar_resolution(text, value):
    data = parse_yaml(f"v: {text}\n", "s.yaml")[0]
    assert data == {"v": value}
    assert type(data["v"]) is type(value)


def test_special_floats():
    data = parse_yaml("a: .inf\nb: -.Inf\nc: .nan\n", "s.yaml")[0]
    assert data["a"] == math.inf and data["b"] == -math.inf and math.isnan(data["c"])


def test_explicit_tag_with_bad_value_is_located():
    with pytest.raises(SpecError) as exc:
        parse_yaml("a: 1\nb: !!int zz\n", "s.yaml")
    assert str(exc.value) == "s.yaml:2:4: invalid YAML: cannot read 'zz' as an integer"


def test_unsafe_tag_is_refused():
    with pytest.raises(SpecError) as exc:
        parse_yaml("a: !!python/object/apply:os.system ['true']\n", "s.yaml")
    assert str(exc.value).startswith("s.yaml:1:4: invalid YAML: could not determine a "
                                     "constructor for the tag")


def test_dump_yaml_quotes_ambiguous_strings_and_round_trips():
    data = {"a": "1e-3", "b": "no", "c": "010", "d": 1e-5, "e": True, "f": None,
            "g": "12:30", "h": [1, "x"], "i": "true"}
    text = dump_yaml(data)
    assert "a: '1e-3'\nb: 'no'\nc: '010'\nd: 1.0e-05\n" in text
    assert parse_yaml(text, "s.yaml")[0] == data


# --- duplicate keys ---------------------------------------------------------------

def test_duplicate_key_names_both_lines():
    with pytest.raises(SpecErrors) as exc:
        doc_of("name: a\nseed: 0\nseed: 1\n")
    assert messages(exc) == ["s.yaml:3:1: seed: duplicate key (first given on line 2)"]


def test_all_duplicate_keys_are_reported_with_their_paths():
    with pytest.raises(SpecErrors) as exc:
        doc_of("a: 1\nb:\n  - {x: 1, y: 2, x: 3}\na: 2\n")
    assert messages(exc) == ["s.yaml:3:18: b[0].x: duplicate key (first given on line 3)",
                             "s.yaml:4:1: a: duplicate key (first given on line 1)"]


def test_alias_shares_the_anchor_data():
    doc = doc_of("a: &x {units: 3}\nb: *x\n")
    assert doc.data == {"a": {"units": 3}, "b": {"units": 3}}
    assert doc.locate_key(("b",)) == (2, 1)


def test_render_path():
    assert render_path(("model", "layers", 1, "units")) == "model.layers[1].units"
    assert render_path(("seed",)) == "seed"
    assert render_path(()) is None


# --- file-level errors ------------------------------------------------------------

def test_syntax_error_has_line_and_column():
    with pytest.raises(SpecError) as exc:
        doc_of("a: 1\nb:\n  c: 2\n   d: 3\n")
    assert str(exc.value) == "s.yaml:4:5: invalid YAML: mapping values are not allowed here"
    assert (exc.value.line, exc.value.col) == (4, 5)


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty; expected a mapping of spec fields"),
    (b"# only a comment\n", "the file is empty; expected a mapping of spec fields"),
    (b"- a\n- b\n", "the top level must be a mapping of spec fields, got a list"),
    (b"just text\n", "the top level must be a mapping of spec fields, got 'just text'"),
])
def test_not_a_mapping(tmp_path, content, message):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError) as exc:
        load_doc(path)
    assert str(exc.value) == f"{path}: {message}"


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: ok\nseed: \xff\n")
    with pytest.raises(SpecError) as exc:
        load_doc(path)
    assert str(exc.value) == f"{path}:2:7: not UTF-8 text (byte 0xff)"


def test_control_character():
    with pytest.raises(SpecError) as exc:
        doc_of("a: 1\nb: \x07\n")
    assert str(exc.value) == "s.yaml:2:4: invalid YAML: control character #x0007 not allowed"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpecError) as exc:
        load_doc(tmp_path / "nope.yaml")
    assert str(exc.value) == f"{tmp_path / 'nope.yaml'}: file not found"
    with pytest.raises(SpecError) as exc:
        load_spec(tmp_path)
    assert str(exc.value) == f"{tmp_path}: is a directory, not a spec file"


def test_doc_keeps_the_file_name_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text("a: 1\n")
    assert load_doc("s.yaml").file == "s.yaml"
