"""Hostile or broken YAML fails fast with one clear, located error: never a hang, a memory
blow-up or a traceback.

The limits are structural (trainctl.spec.yaml_loader: file size read at most once past the
limit, nesting depth, values counted with aliases expanded while the document is composed,
so a bomb is refused before anything is expanded). To turn a regression into a failure
rather than a hang, every case is loaded in one child process run with a time-out and a
memory cap; the test measures no speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainctl.spec.yaml_loader import MAX_DEPTH, MAX_SPEC_BYTES, MAX_VALUES

ROOT = Path(__file__).resolve().parent.parent

VALID_TAIL = """\
name: x
data: {source: {type: digits}}
model: {input_shape: [64], layers: [{type: dense, units: 10}]}
loss: sparse_categorical_crossentropy
optimizer: adam
"""


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        prev, name = chr(ord("a") + level - 1), chr(ord("a") + level)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# name -> (file content, words the single error line must contain)
CASES: dict[str, tuple[bytes, list[str]]] = {
    "billion_laughs.yaml": (billion_laughs().encode(), [f"more than {MAX_VALUES:,} values",
                                                        "aliases"]),
    "quadratic.yaml": (("a: &a [" + ",".join(["1"] * 1000) + "]\nb: [" +
                        ",".join(["*a"] * 1000) + "]\n").encode(), ["aliases counted expanded"]),
    "recursive.yaml": (b"a: &a [1, *a]\n", ["alias *a", "recursive"]),
    "recursive_map.yaml": (b"a: &r\n  b: &s\n    c: *r\n", ["alias *r", "recursive"]),
    "deep_flow.yaml": (("a: " + "[" * 200_000).encode(), [f"more than {MAX_DEPTH} levels"]),
    "deep_block.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(300)).encode(),
                        [f"more than {MAX_DEPTH} levels"]),
    "deep_mixed.yaml": (("a: " + "{b: [" * 5000 + "1" + "]}" * 5000 + "\n").encode(),
                        ["levels deep"]),
    "wide.yaml": (("a: [" + "0," * 200_000 + "0]\n").encode(), ["values"]),
    "many_keys.yaml": ("".join(f"k{i}: {i}\n" for i in range(60_000)).encode(), ["values"]),
    "huge.yaml": (b"# padding\n" * (MAX_SPEC_BYTES // 10 + 1), ["larger than", "bytes"]),
    "binary.yaml": (bytes(range(256)) * 64, ["not UTF-8"]),
    "nul.yaml": (b"name: x\nseed: \x00\n", ["control character"]),
    "png.yaml": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), ["not UTF-8"]),
    "empty.yaml": (b"", ["empty"]),
    "blank.yaml": (b"\n\n   \n# just a comment\n", ["empty"]),
    "top_list.yaml": (b"- name: x\n- seed: 1\n", ["top level must be a mapping", "a list"]),
    "model_list.yaml": (VALID_TAIL.replace("model: {input_shape: [64], layers: "
                                           "[{type: dense, units: 10}]}", "model: [1, 2]")
                        .encode(), ["model:", "expected a mapping, got a list"]),
    "layers_map.yaml": (VALID_TAIL.replace("layers: [{type: dense, units: 10}]",
                                           "layers: {type: dense}").encode(),
                        ["model.layers:", "expected a list"]),
    "tabs.yaml": (b"name: x\ndata:\n\tsource: digits\n", ["3:1", "tab character"]),
    "many_docs.yaml": (VALID_TAIL.encode() + b"---\n" + VALID_TAIL.encode(),
                       ["expected a single document"]),
    "undefined_alias.yaml": (b"a: *nope\n", ["undefined alias"]),
    "python_tag.yaml": (b"a: !!python/object/apply:os.system ['true']\n", ["tag"]),
}

SCRIPT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a blow-up fails, not swaps
from trainctl.errors import TrainctlError
from trainctl.spec import load_spec
for path in sys.argv[1:]:
    try:
        load_spec(path)
        out = {"file": path, "ok": True}
    except TrainctlError as exc:
        out = {"file": path, "ok": False, "lines": str(exc).splitlines()}
    print(json.dumps(out), flush=True)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = []
    for name, (content, _) in CASES.items():
        (folder / name).write_bytes(content)
        paths.append(str(folder / name))
    paths.append("/dev/zero")  # endless: refused after reading MAX_SPEC_BYTES + 1 bytes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *paths], capture_output=True,
                          text=True, env=env, timeout=180)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return {Path(row["file"]).name: row for row in rows}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_gives_one_clear_error(results, name):
    row = results[name]
    assert not row["ok"], name
    assert len(row["lines"]) == 1, row["lines"]
    line = row["lines"][0]
    assert line.endswith(name) or f"{name}:" in line, line  # names the file
    for word in CASES[name][1]:
        assert word in line, (word, line)
    assert "Traceback" not in line


def test_endless_file_is_refused_by_size(results):
    assert results["zero"]["lines"] == [f"/dev/zero: the file is larger than "
                                        f"{MAX_SPEC_BYTES:,} bytes; a spec is a small text file"]


def test_bombs_are_refused_where_they_start():
    from trainctl.spec.yaml_loader import parse_yaml
    from trainctl.errors import SpecError

    with pytest.raises(SpecError) as exc:
        parse_yaml(billion_laughs(), "b.yaml")
    # level e holds 9**5 = 59,049 values: the count passes the limit inside its line
    assert (exc.value.line, exc.value.file) == (5, "b.yaml")
    with pytest.raises(SpecError) as exc:
        parse_yaml("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "d.yaml")
    # the mapping is level 1, so the (MAX_DEPTH)th '[' opens level MAX_DEPTH + 1
    assert (exc.value.line, exc.value.col) == (1, 3 + MAX_DEPTH)


def test_under_the_limits_is_fine():
    from trainctl.spec.yaml_loader import parse_yaml

    lists = MAX_DEPTH - 2  # the mapping, the lists and the innermost 1: MAX_DEPTH levels
    nested = "a: " + "[" * lists + "1" + "]" * lists
    assert parse_yaml(nested, "n.yaml")[0]["a"] is not None
    shared = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n"
    data = parse_yaml(shared, "s.yaml")[0]
    assert data["b"] == [[1, 2, 3]] * 3
