"""The spec's filter, interleave and zip steps. Oracles: the CSV file read with Python's
csv module, tf.data's interleave order written out by hand, and located spec errors."""

from __future__ import annotations

import csv
import operator
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainctl.data import plan_data
from trainctl.data.report import inspect_splits
from trainctl.errors import DataError, SpecError, SpecErrors
from trainctl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["setosa", "versicolor", "virginica"]     # sorted names → indices 0, 1, 2
REST = """\
model: {input_shape: [4], layers: [{type: dense, units: 3}]}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: adam
"""


@pytest.fixture
def work(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "datasets" / "iris.csv", tmp_path / "data" / "iris.csv")
    return tmp_path


def rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: features float32 [N, 4] and class indices, read with the csv module."""
    with open(path, newline="") as fh:
        records = list(csv.DictReader(fh))
    x = np.array([[float(r[k]) for k in ("sepal_length", "sepal_width", "petal_length",
                                          "petal_width")] for r in records], dtype=np.float32)
    return x, np.array([CLASSES.index(r["species"]) for r in records])


def load(work: Path, steps: str, source: str = "{type: csv, path: data/iris.csv, label: species}",
         splits: bool = False):
    path = work / "s.yaml"
    path.write_text(f"name: t\nseed: 3\ndata:\n  train:\n    source: {source}\n"
                    f"    steps:\n{steps}{REST}")
    spec = load_spec(path)
    loaded = plan_data(spec.data, spec.doc).load(3)
    return loaded if splits else loaded.train


def epoch(ds, e=0) -> tuple[np.ndarray, np.ndarray]:
    parts = list(ds.iterate(e))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_filter_label_in_by_name_and_index(work):
    x, y = rows(work / "data" / "iris.csv")
    keep = np.isin(y, [0, 2])
    for values in ("[setosa, virginica]", "[0, 2]", "[virginica, 0]"):
        gx, gy = epoch(load(work, f"      - {{type: filter, predicate: {{type: label_in, "
                                  f"values: {values}}}}}\n      - {{type: batch, batch_size: 32}}\n"))
        np.testing.assert_array_equal(gx, x[keep])
        np.testing.assert_array_equal(gy, y[keep])
    report = inspect_splits(load(work, "      - {type: filter, predicate: {type: label_in, "
                                      "values: [versicolor]}}\n      - {type: batch, batch_size: 32}\n",
                                splits=True))["splits"]["train"]
    assert (report["samples"], report["batches"], report["classes"]) == (50, 2, [0, 50, 0])
    with pytest.raises(SpecError, match=r"s\.yaml:7:9: data\.train\.steps\[0\]: predicate label_in: "
                                        r"'rose' is not a class; the classes are"):
        load(work, "      - {type: filter, predicate: {type: label_in, values: [rose]}}\n"
                   "      - {type: batch, batch_size: 32}\n")


def test_a_filter_that_leaves_no_training_data_names_the_step(work):
    _, y = rows(work / "data" / "iris.csv")
    keep_one = "      - {type: filter, predicate: {type: label_in, values: [setosa]}}\n"
    splits = load(work, keep_one + "      - {type: batch, batch_size: 32}\n", splits=True)
    assert splits.sizes["train"] == int((y == 0).sum()) == 50     # the banner's count
    with pytest.raises(DataError, match=r"^data\.train: no elements left after steps\[1\] "
                                        r"\(filter\)$"):
        load(work, keep_one + "      - {type: filter, predicate: {type: label_in, values: "
                              "[virginica]}}\n      - {type: batch, batch_size: 32}\n")
    from trainctl.cli.validate import check_spec_file    # validate reads the CSV whole
    errors = check_spec_file(work / "s.yaml", [])
    assert [str(e) for e in errors] == ["data.train: no elements left after steps[1] (filter)"]
    assert check_spec_file(work / "s.yaml", ["data.train.steps[1]={type: shuffle}"]) == []


def test_a_compare_index_past_the_features_is_located_by_load_and_validate(work):
    from trainctl.cli.validate import check_spec_file
    steps = ("      - {type: filter, predicate: {type: compare, index: 9, op: '>', value: 1}}\n"
             "      - {type: batch, batch_size: 32}\n")
    message = (r"s\.yaml:7:9: data\.train\.steps\[0\]: predicate compare: index 9 is past "
               r"the 4 feature values$")
    with pytest.raises(SpecError, match=message):
        load(work, steps)
    errors = check_spec_file(work / "s.yaml", [])
    assert len(errors) == 1 and isinstance(errors[0], SpecError), errors
    assert re.search(message, str(errors[0])), str(errors[0])
    good = steps.replace("index: 9", "index: 3")
    load(work, good)
    assert check_spec_file(work / "s.yaml", []) == []


@pytest.mark.parametrize("op, index, value", [(">=", 2, 4.5), ("<", 0, 5.0), ("!=", 3, 0.2)])
def test_filter_compare_on_a_feature(work, op, index, value):
    x, y = rows(work / "data" / "iris.csv")
    compare = {">=": operator.ge, "<": operator.lt, "!=": operator.ne}[op]
    keep = compare(x[:, index], np.float32(value))
    steps = (f"      - {{type: filter, predicate: {{type: compare, index: {index}, op: '{op}', "
             f"value: {value}}}}}\n      - {{type: batch, batch_size: 200}}\n")
    gx, gy = epoch(load(work, steps))
    assert 0 < keep.sum() < len(y)
    np.testing.assert_array_equal(gx, x[keep])
    np.testing.assert_array_equal(gy, y[keep])


def test_filter_finite_drops_rows_holding_nan_or_inf(work):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    x[2, 1], x[7, 3] = np.nan, np.inf
    y = np.arange(10) % 2
    np.savez(work / "data" / "d.npz", x=x, y=y)
    gx, gy = epoch(load(work, "      - {type: filter, predicate: finite}\n"
                              "      - {type: batch, batch_size: 4}\n",
                        source="{type: npz, path: data/d.npz}"))
    keep = np.array([i not in (2, 7) for i in range(10)])
    np.testing.assert_array_equal(gx, x[keep])
    np.testing.assert_array_equal(gy, y[keep])


def test_interleave_by_label_follows_tf_data_order(work):
    x, y = rows(work / "data" / "iris.csv")                   # 50 rows per class, in order
    of = [np.flatnonzero(y == c) for c in range(3)]
    # cycle 3, block 2: blocks of 2 taken from classes 0, 1, 2 in turn
    want3 = np.concatenate([of[c][b:b + 2] for b in range(0, 50, 2) for c in range(3)])
    # cycle 2, block 5: classes 0 and 1 alternate by 5; class 2 opens when both have ended
    want2 = np.concatenate([*[of[c][b:b + 5] for b in range(0, 50, 5) for c in range(2)], of[2]])
    for cycle, block, want in ((3, 2, want3), (2, 5, want2)):
        for calls in ("", ", num_parallel_calls: 2", ", num_parallel_calls: autotune"):
            steps = (f"      - {{type: interleave, cycle_length: {cycle}, block_length: {block}{calls}}}\n"
                     "      - {type: batch, batch_size: 64}\n")
            gx, gy = epoch(load(work, steps))
            np.testing.assert_array_equal(gx, x[want])
            np.testing.assert_array_equal(gy, y[want])


def test_interleave_after_shuffle_is_still_a_permutation(work):
    x, y = rows(work / "data" / "iris.csv")
    ds = load(work, "      - {type: shuffle}\n      - {type: interleave}\n"
                    "      - {type: batch, batch_size: 64}\n")
    gx, gy = epoch(ds, 1)
    assert sorted(map(tuple, gx.tolist())) == sorted(map(tuple, x.tolist()))
    assert gy[:3].tolist() == [0, 1, 2]                       # one of each class in turn


def test_zip_joins_the_features_of_two_sources_row_by_row(work):
    x, y = rows(work / "data" / "iris.csv")
    left = "{type: csv, path: data/iris.csv, label: species, columns: [sepal_length, sepal_width]}"
    steps = ("      - {type: zip, source: {type: csv, path: data/iris.csv, label: species, "
             "columns: [petal_length, petal_width]}}\n      - {type: batch, batch_size: 64}\n")
    gx, gy = epoch(load(work, steps, source=left))
    np.testing.assert_array_equal(gx, x)
    np.testing.assert_array_equal(gy, y)
    lines = (work / "data" / "iris.csv").read_text().splitlines()
    (work / "data" / "rev.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    bad = steps.replace("iris.csv, label: species, columns: [petal", "rev.csv, label: species, columns: [petal")
    with pytest.raises(DataError, match=r"map: element 0 \(epoch 0\): data\.train\.steps\[0\]: "
                                        r"zip: the labels differ"):
        epoch(load(work, bad, source=left))
    ignored = bad.replace("petal_width]}", "petal_width]}, labels: ignore")
    gx, gy = epoch(load(work, ignored, source=left))
    np.testing.assert_array_equal(gx[:, 2:], x[::-1, 2:])
    np.testing.assert_array_equal(gy, y)


def test_bad_filter_interleave_and_zip_steps_are_located_spec_errors(work):
    path = work / "s.yaml"
    path.write_text(
        "name: t\nseed: 3\ndata:\n"
        "  source: {type: csv, path: data/iris.csv, label: species}\n"
        "  train:\n    steps:\n"
        "      - {type: filter, predicate: {type: label_inn, values: [1]}}\n"     # line 7
        "      - {type: filter, predicate: {type: compare, op: '<', value: 1}}\n"  # line 8
        "      - {type: zip, source: {type: csv, path: data/nope.csv, label: y}}\n"  # line 9
        "      - {type: zip, source: {type: iris}}\n"                            # line 10
        "      - {type: batch, batch_size: 8}\n"
        "      - {type: interleave, by: label}\n"                                # line 12
        "      - {type: filter, predicate: eval}\n"                              # line 13
        + REST)
    spec = load_spec(path)
    with pytest.raises(SpecErrors) as info:
        plan_data(spec.data, spec.doc)
    got = [(e.line, e.key, e.message) for e in info.value.errors]
    expected = [
        (7, "data.train.steps[0].predicate.type", "unknown filter predicate 'label_inn'"),
        (8, "data.train.steps[1].predicate", "on: features needs index"),
        (9, "data.train.steps[2]", "zip pairs the section's own source"),
        (9, "data.train.steps[2].source.path", "data/nope.csv: no such file"),
        (10, "data.train.steps[3]", "zip pairs the section's own source"),
        (12, "data.train.steps[5]", "interleave works on single elements; put it before"),
        (13, "data.train.steps[6].predicate.type", "unknown filter predicate 'eval'"),
    ]
    assert len(got) == len(expected), got
    for (line, key, message), (wline, wkey, wmessage) in zip(got, expected):
        assert (line, key) == (wline, wkey), got
        assert wmessage in message, message
