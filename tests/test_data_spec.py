"""The spec's data section: file sources relative to the spec, the sections form with
pipeline steps, located errors, and the resolved data section."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from trainctl.data import plan_data
from trainctl.errors import SpecErrors
from trainctl.spec import Spec, SpecDoc, load_spec

ROOT = Path(__file__).resolve().parents[1]
IRIS_CSV = ROOT / "datasets" / "iris.csv"

REST = """\
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: adam
"""


def spec_in(folder: Path, data: str, name: str = "s.yaml") -> Spec:
    path = folder / name
    path.write_text(f"name: t\nseed: 3\ndata:\n{data}{REST}")
    return load_spec(path)


def plan(spec: Spec):
    return plan_data(spec.data, spec.doc)


def batches(ds, epoch=0):
    return [tuple(np.asarray(a) for a in b) for b in ds.iterate(epoch)]


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(IRIS_CSV, tmp_path / "data" / "iris.csv")
    return tmp_path


def test_csv_source_relative_to_the_spec_gives_the_iris_split(work, monkeypatch):
    monkeypatch.chdir("/")                            # paths do not depend on the cwd
    v0 = "  split: {validation: 0.1, test: 0.2}\n  batch_size: 16\n  standardize: true\n"
    by_csv = plan(spec_in(work, "  source: {type: csv, path: data/iris.csv, label: species}\n" + v0))
    by_sklearn = plan(spec_in(work, "  source: {type: iris}\n" + v0, "b.yaml"))
    a, b = by_csv.load(3), by_sklearn.load(3)
    assert a.sizes == b.sizes == {"train": 105, "validation": 15, "test": 30}
    for split in ("train", "validation", "test"):
        for (xa, ya), (xb, yb) in zip(batches(getattr(a, split)), batches(getattr(b, split))):
            np.testing.assert_allclose(xa, xb, rtol=1e-6)
            np.testing.assert_array_equal(ya, yb)


def test_missing_file_is_a_located_spec_error(work):
    spec = spec_in(work, "  source: {type: csv, path: data/nope.csv, label: species}\n")
    with pytest.raises(SpecErrors) as info:
        plan(spec)
    [error] = info.value.errors
    assert (error.line, error.key) == (4, "data.source.path")
    assert "nope.csv: no such file" in error.message


SECTIONS = """\
  source: {type: csv, path: data/iris.csv, label: species}
  split: {validation: 0.1, test: 0.2}
  train:
    steps:
      - standardize
      - {type: shuffle}
      - {type: batch, batch_size: 16}
"""


def test_sections_form_equals_the_v0_form(work):
    v0 = plan(spec_in(work, "  source: {type: csv, path: data/iris.csv, label: species}\n"
                            "  batch_size: 16\n  standardize: true\n", "v0.yaml")).load(3, 32)
    sections = plan(spec_in(work, SECTIONS)).load(3, 32)
    assert sections.sizes == v0.sizes and sections.input_shape == (4,)
    assert sections.num_classes == 3
    for epoch in (0, 1):                          # same standardisation, same shuffled order
        for (xa, ya), (xb, yb) in zip(batches(sections.train, epoch), batches(v0.train, epoch)):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    # validation and test get train's fitted standardize and batches of eval_batch_size
    for split in ("validation", "test"):
        got, want = batches(getattr(sections, split)), batches(getattr(v0, split))
        assert [len(b[1]) for b in got] == [len(b[1]) for b in want]
        for (xa, _), (xb, _) in zip(got, want):
            np.testing.assert_array_equal(xa, xb)


def test_sections_with_their_own_sources(work):
    lines = IRIS_CSV.read_text().splitlines()
    (work / "data" / "train.csv").write_text("\n".join(lines[:1] + lines[1::2]) + "\n")
    (work / "data" / "test.csv").write_text("\n".join(lines[:1] + lines[2::2]) + "\n")
    spec = spec_in(work, """\
  train:
    source: {type: csv, path: data/train.csv, label: species}
    steps: [{type: normalize, min: 0, max: 10}, {type: one_hot}, {type: batch, batch_size: 25}]
  test:
    source: {type: csv, path: data/test.csv, label: species}
    steps: [{type: normalize, min: 0, max: 10}, {type: one_hot}]
""")
    splits = plan(spec).load(0, 50)
    assert splits.sizes == {"train": 75, "validation": 0, "test": 75}
    x, y = batches(splits.test)[0]
    iris = np.loadtxt(IRIS_CSV, delimiter=",", skiprows=1, usecols=range(4))
    np.testing.assert_allclose(x, iris[1::2][:50] / 10, rtol=1e-6)
    assert y.shape == (50, 3) and (y.sum(axis=1) == 1).all()
    assert [len(b[1]) for b in batches(splits.train)] == [25, 25, 25]


@pytest.mark.parametrize("data, expected", [
    (SECTIONS + "  batch_size: 8\n",
     ["data.batch_size: the train/validation/test sections take the pipeline as steps"]),
    ("  validation:\n    source: {type: iris}\n    steps: []\n",
     ["data.train: missing required field"]),
    (SECTIONS.replace("      - {type: batch, batch_size: 16}\n", ""),
     ["data.train.steps: the train steps need a batch or padded_batch step"]),
    (SECTIONS.replace("{type: shuffle}", "{type: shufle}"),
     ["data.train.steps[1].type: unknown pipeline step 'shufle'; did you mean 'shuffle'?"]),
    (SECTIONS.replace("{type: shuffle}", "{type: shuffle, buffer: 3}"),
     ["data.train.steps[1].buffer: unknown field; did you mean 'buffer_size'?"]),
    (SECTIONS + "  test:\n    steps: [{type: standardize}, standardize]\n",
     ["data.test.steps[1]: standardize takes its statistics from the train split"]),
    (SECTIONS + "  test:\n    source: {type: iris}\n",
     ["data.test.source: data.source is already split into the sections"]),
    (SECTIONS.replace("- standardize", "- {type: map, transform: {type: standardise}}"),
     ["data.train.steps[0].transform.type: unknown map transform 'standardise'; "
      "did you mean 'standardize'?"]),
    (SECTIONS.replace("- standardize", "- {type: repeat}"),
     ["data.train.steps[0].count: missing required field"]),
])
def test_bad_data_sections_are_located(work, data, expected):
    with pytest.raises(SpecErrors) as info:
        plan(spec_in(work, data))
    got = [f"{e.key}: {e.message}" for e in info.value.errors]
    assert len(got) == len(expected), got
    for message, want in zip(got, expected):
        assert message.startswith(want), message
    assert all(e.line is not None for e in info.value.errors)


def test_map_step_with_parallel_calls_gives_the_same_batches(work):
    parallel = SECTIONS.replace("- standardize",
                                "- {type: map, transform: standardize, num_parallel_calls: 3}")
    a = plan(spec_in(work, parallel)).load(3)
    b = plan(spec_in(work, SECTIONS, "b.yaml")).load(3)
    for (xa, ya), (xb, yb) in zip(batches(a.train, 2), batches(b.train, 2)):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_map_step_with_autotune_builds_an_autotune_map_giving_the_serial_batches(work, monkeypatch):
    from trainctl.data import AUTOTUNE, Dataset
    from trainctl.data.parallel import Map, cpu_count

    calls = []
    real_map = Dataset.map
    monkeypatch.setattr(Dataset, "map", lambda ds, fn, n=None: calls.append(n) or real_map(ds, fn, n))
    auto = SECTIONS.replace("- standardize",
                            "- {type: map, transform: standardize, num_parallel_calls: autotune}")
    a = plan(spec_in(work, auto)).load(3)
    assert calls == [AUTOTUNE, AUTOTUNE, AUTOTUNE] and AUTOTUNE == -1     # train, validation, test
    node, maps = a.train, []
    while node is not None:                       # the train pipeline's Map: one thread per CPU
        maps += [node] if isinstance(node, Map) else []
        node = next(iter(node._inputs()), None)
    assert [m.workers for m in maps] == [cpu_count()]
    b = plan(spec_in(work, SECTIONS, "b.yaml")).load(3)
    got, want = batches(a.train, 2), batches(b.train, 2)
    assert len(got) == len(want) == 7
    for (xa, ya), (xb, yb) in zip(got, want):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("value", ["-1", "0", "fast", "AUTOTUNE", "2.5"])
def test_bad_num_parallel_calls_is_located_and_lists_the_allowed_values(work, value):
    bad = SECTIONS.replace("- standardize",
                           f"- {{type: map, transform: standardize, num_parallel_calls: {value}}}")
    with pytest.raises(SpecErrors) as info:
        plan(spec_in(work, bad))
    [error] = info.value.errors
    line = f"{error.file}:{error.line}:{error.col}: {error.key}: {error.message}"
    got = repr(yaml.safe_load(value))
    text = (work / "s.yaml").read_text().splitlines()
    row = next(i for i, t in enumerate(text) if "num_parallel_calls" in t)
    col = text[row].index("num_parallel_calls: ") + len("num_parallel_calls: ")
    assert (row, col) == (7, 64)                                   # 1-based: 8:65
    assert line == (f"{work / 's.yaml'}:8:65: data.train.steps[0].num_parallel_calls: "
                    f"expected an integer > 0 or 'autotune', got {got}")


def test_resolved_data_section_round_trips_with_absolute_paths(work):
    spec = spec_in(work, SECTIONS + "  test:\n    steps: [standardize, {type: cache}]\n")
    resolved = plan(spec).resolved()
    assert resolved["source"]["path"] == str(work / "data" / "iris.csv")
    assert resolved["train"]["steps"][1] == {"type": "shuffle", "buffer_size": None, "seed": None,
                                             "reshuffle_each_iteration": True}
    assert "batch_size" not in resolved and "validation" not in resolved
    whole = spec.to_dict()
    whole["data"] = resolved
    text = yaml.safe_dump(whole, sort_keys=False)
    again = Spec.from_doc(SpecDoc.from_text(text, str(work / "again.yaml")))
    assert again.to_dict()["data"] == resolved
    assert plan(again).resolved() == resolved


@pytest.mark.slow
def test_iris_csv_example_spec_reaches_its_bar():
    from trainctl.train import Trainer, evaluate, prepare

    setup = prepare(load_spec(ROOT / "specs" / "iris_csv.yaml"), device="cpu")
    Trainer(setup).fit()
    assert evaluate(setup, setup.splits.test)["accuracy"] >= 0.9
