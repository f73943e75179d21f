"""``trainctl predict``: every input format (CSV, NPY, NPZ, image folder, single image),
every output format (CSV, JSONL, NPZ), classification and regression, against a plain
torch oracle of the checkpoint (stored train statistics, then the dense layers); malformed
rows, --skip-bad, and no partial output file on an error."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from use_helpers import IRIS_CSV, invoke, iris_rows, make_runs, oracle


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return make_runs(tmp_path_factory.mktemp("predict"))


def ckpt_of(run):
    return run / "checkpoints" / (run / "checkpoints" / "best").read_text().strip() \
        if (run / "checkpoints" / "best").exists() else run / "checkpoints" / "final"


def predict(spec, run, source, output, *extra):
    return invoke("predict", spec, "--checkpoint", run, "--input", source, "--output", output, *extra)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_rows_to_csv(runs, tmp_path):
    spec, run = runs["iris"]
    out = tmp_path / "p.csv"
    result = predict(spec, run, IRIS_CSV, out, "--top-k", 2)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 150 predictions to {out}\n"  # no progress bar off a terminal
    rows = read_csv(out)
    x, _ = iris_rows()
    expected = torch.softmax(oracle(ckpt_of(run), x), dim=1).numpy()
    probs = np.array([[float(r[f"p_{c}"]) for c in ("setosa", "versicolor", "virginica")] for r in rows])
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    names = np.array(["setosa", "versicolor", "virginica"])
    assert [r["class"] for r in rows] == names[expected.argmax(1)].tolist()
    assert [int(r["class_index"]) for r in rows] == expected.argmax(1).tolist()
    second = np.argsort(-expected, axis=1)[:, 1]
    assert [r["top2_class"] for r in rows] == names[second].tolist()
    assert "top3_class" not in rows[0]
    assert rows[0]["input"].endswith("iris.csv:2") and rows[-1]["input"].endswith("iris.csv:151")


@pytest.mark.parametrize("kind", ["npy", "npz"])
def test_npy_and_npz_arrays_give_the_csv_rows_predictions(runs, tmp_path, kind):
    spec, run = runs["iris"]
    x, _ = iris_rows()
    source = tmp_path / f"x.{kind}"
    np.save(source, x) if kind == "npy" else np.savez(source, x=x)
    out = tmp_path / "p.jsonl"
    result = predict(spec, run, source, out)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    expected = torch.softmax(oracle(ckpt_of(run), x), dim=1).numpy()
    got = np.array([[r["probabilities"][c] for c in ("setosa", "versicolor", "virginica")] for r in lines])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert lines[3]["input"] == f"{source}[3]"
    assert len(lines[0]["top_k"]) == 3 and lines[0]["top_k"][0]["class"] == lines[0]["class"]
    assert [t["probability"] for t in lines[0]["top_k"]] == sorted(lines[0]["probabilities"].values(), reverse=True)


def test_image_folder_and_single_image_to_npz(runs, tmp_path):
    spec, run = runs["images"]
    folder = runs["root"] / "images"
    out = tmp_path / "p.npz"
    result = predict(spec, run, folder, out)
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as d:
        files = sorted(p for p in folder.rglob("*.png"))
        assert d["input"].tolist() == [str(p) for p in files]
        pixels = np.stack([np.asarray(Image.open(p), np.float32) for p in files])
        expected = torch.softmax(oracle(ckpt_of(run), pixels), dim=1).numpy()
        np.testing.assert_allclose(d["probabilities"], expected, rtol=1e-5, atol=1e-6)
        assert d["class_names"].tolist() == ["dark", "light"]
        assert d["class"].tolist() == np.array(["dark", "light"])[expected.argmax(1)].tolist()
        np.testing.assert_array_equal(d["top_k_index"][:, 0], d["class_index"])
        folder_probs = d["probabilities"]
    single = tmp_path / "one.npz"
    assert predict(spec, run, files[5], single).exit_code == 0
    with np.load(single, allow_pickle=False) as d:
        np.testing.assert_allclose(d["probabilities"][0], folder_probs[5], rtol=1e-6)


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "npz"])
def test_regression_writes_values(runs, tmp_path, suffix):
    from sklearn.datasets import load_diabetes

    spec, run = runs["diabetes"]
    x = load_diabetes().data[:40].astype(np.float32)
    source = tmp_path / "x.npy"
    np.save(source, x)
    out = tmp_path / f"p.{suffix}"
    result = predict(spec, run, source, out)
    assert result.exit_code == 0, result.output
    expected = oracle(ckpt_of(run), x).numpy()[:, 0]
    if suffix == "csv":
        rows = read_csv(out)
        assert list(rows[0]) == ["input", "value"]
        got = [float(r["value"]) for r in rows]
    elif suffix == "jsonl":
        got = [json.loads(line)["value"] for line in out.read_text().splitlines()]
    else:
        with np.load(out, allow_pickle=False) as d:
            assert sorted(d.files) == ["input", "values"]
            got = d["values"][:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


BAD = "sepal_length,sepal_width,petal_length,petal_width,species\n" \
      "5.1,3.5,1.4,0.2,setosa\n6.0,x,4.0,1.2,versicolor\n6.3,3.3\n7.7,3.0,6.1,2.3,virginica\n"


def test_a_malformed_row_is_an_error_naming_file_and_line_and_nothing_is_written(runs, tmp_path):
    spec, run = runs["iris"]
    source = tmp_path / "bad.csv"
    source.write_text(BAD)
    out = tmp_path / "p.csv"
    result = predict(spec, run, source, out)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"{source}:3: column 'sepal_width': 'x' is not a number" in result.output
    assert "--skip-bad" in result.output
    assert not out.exists() and not list(tmp_path.glob(".p.csv*"))


def test_skip_bad_leaves_malformed_rows_out_and_lists_them(runs, tmp_path):
    spec, run = runs["iris"]
    source = tmp_path / "bad.csv"
    source.write_text(BAD)
    out = tmp_path / "p.csv"
    result = predict(spec, run, source, out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r["input"] for r in read_csv(out)] == [f"{source}:2", f"{source}:5"]
    assert f"skipped 2 bad row(s): {source}:3:" in result.stderr and f"{source}:4: expected 5 fields" in result.stderr
    assert "(2 rows skipped)" in result.stdout
    x = np.array([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]], np.float32)
    got = np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in read_csv(out)])
    np.testing.assert_allclose(got, torch.softmax(oracle(ckpt_of(run), x), 1).numpy(), rtol=1e-5, atol=1e-6)


def test_an_error_keeps_an_existing_output_and_quiet_prints_nothing(runs, tmp_path):
    spec, run = runs["iris"]
    out = tmp_path / "p.csv"
    out.write_text("old\n")
    source = tmp_path / "bad.csv"
    source.write_text(BAD)
    assert predict(spec, run, source, out).exit_code == 2
    assert out.read_text() == "old\n"
    result = predict(spec, run, IRIS_CSV, out, "--quiet", "--batch-size", 7)
    assert result.exit_code == 0 and result.stdout == ""
    assert len(read_csv(out)) == 150


@pytest.mark.parametrize("args, message", [
    (("--output", "{tmp}/p.txt"), "unknown format '.txt'"),
    (("--input", "{tmp}/none.csv"), "no such file"),
    (("--input", "{tmp}/x.npy"), "x.npy: rows of shape [5], the model takes [4]"),
])
def test_bad_arguments_are_one_line_errors(runs, tmp_path, args, message):
    spec, run = runs["iris"]
    np.save(tmp_path / "x.npy", np.zeros((3, 5), np.float32))
    base = {"--input": str(IRIS_CSV), "--output": str(tmp_path / "p.csv")}
    base[args[0]] = args[1].format(tmp=tmp_path)
    result = invoke("predict", spec, "--checkpoint", run, *[v for kv in base.items() for v in kv])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert message in result.output


def test_an_unreadable_image_is_named_and_skipped_with_skip_bad(runs, tmp_path):
    import shutil

    spec, run = runs["images"]
    folder = tmp_path / "imgs"
    shutil.copytree(runs["root"] / "images" / "dark", folder)
    (folder / "05.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(folder / "06.png")  # another size
    out = tmp_path / "p.csv"
    result = predict(spec, run, folder, out)
    assert result.exit_code == 2 and f"{folder / '05.png'}: cannot read as an image" in result.output
    assert not out.exists()
    result = predict(spec, run, folder, out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert len(read_csv(out)) == 10 and "skipped 2 bad row(s)" in result.stderr
    assert f"{folder / '06.png'}: shape [3, 3], the model takes [6, 5]" in result.stderr


def test_a_progress_bar_on_a_terminal_only(runs, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import trainctl.cli.predict as cli_predict

    spec, run = runs["iris"]
    screen = io.StringIO()
    monkeypatch.setattr(cli_predict, "out", Console(file=screen, force_terminal=True, width=100))
    assert predict(spec, run, IRIS_CSV, tmp_path / "p.csv", "--batch-size", 50).exit_code == 0
    assert "predict" in screen.getvalue() and "150/150" in screen.getvalue()
    screen.seek(0), screen.truncate()
    assert predict(spec, run, IRIS_CSV, tmp_path / "p.csv", "--quiet").exit_code == 0
    assert screen.getvalue() == ""


def test_binary_probabilities_are_one_minus_p_and_p():
    from trainctl.train.trained import Trained

    logits = torch.tensor([[0.3], [-2.0]])
    for from_logits, out in ((True, logits), (False, torch.sigmoid(logits))):
        trained = Trained(None, None, None, None, "binary", from_logits, ("no", "yes"), None, {})
        p = torch.sigmoid(logits.double())[:, 0]
        torch.testing.assert_close(trained.probabilities(out), torch.stack([1 - p, p], 1),
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cell", ["nan", "NA", ""])
def test_a_missing_cell_is_a_malformed_row(runs, tmp_path, cell):
    spec, run = runs["iris"]
    source = tmp_path / "gap.csv"
    source.write_text(f"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.0,{cell},4.0,1.2\n")
    result = predict(spec, run, source, tmp_path / "p.csv")
    assert result.exit_code == 2 and f"{source}:3: column 'sepal_width': missing value" in result.output


def test_a_wrong_size_first_image_is_the_bad_row_not_the_others(runs, tmp_path):
    import shutil

    spec, run = runs["images"]
    folder = tmp_path / "imgs"
    shutil.copytree(runs["root"] / "images" / "dark", folder)
    good = sorted(folder.glob("*.png"))
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "000_big.png")  # sorts first
    out = tmp_path / "p.npz"
    result = predict(spec, run, folder, out, "--device", "cpu")  # no "device auto took" line
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: {folder / '000_big.png'}: shape [10, 10], the model takes [6, 5] (pass --skip-bad "
        f"to leave such rows out)"]
    assert not out.exists()
    result = predict(spec, run, folder, out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert f"skipped 1 bad row(s): {folder / '000_big.png'}: shape [10, 10]" in result.stderr
    assert "(1 row skipped)" in result.stdout
    with np.load(out, allow_pickle=False) as d:
        assert d["input"].tolist() == [str(p) for p in good]
        pixels = np.stack([np.asarray(Image.open(p), np.float32) for p in good])
        expected = torch.softmax(oracle(ckpt_of(run), pixels), dim=1).numpy()
        np.testing.assert_allclose(d["probabilities"], expected, rtol=1e-5, atol=1e-6)


def test_an_npy_of_another_width_names_both_shapes(runs, tmp_path):
    spec, run = runs["images"]
    np.save(tmp_path / "x.npy", np.zeros((4, 6, 4), np.float32))
    result = predict(spec, run, tmp_path / "x.npy", tmp_path / "p.csv")
    assert result.exit_code == 2 and "broadcast" not in result.output
    assert f"{tmp_path / 'x.npy'}: rows of shape [6, 4], the model takes [6, 5]" in result.output
    assert not (tmp_path / "p.csv").exists()


def test_a_label_column_the_spec_does_not_name_is_pointed_out(runs, tmp_path):
    spec, run = runs["iris"]
    source = tmp_path / "kinds.csv"
    source.write_text(IRIS_CSV.read_text().replace("species", "kind", 1))
    result = predict(spec, run, source, tmp_path / "p.csv")
    assert result.exit_code == 2 and "--skip-bad" not in result.output
    assert f"{source} has 5 columns" in result.output and "the model takes [4]" in result.output
    assert "drop the label column 'kind' (not numbers)" in result.output
    numbers = tmp_path / "six.csv"
    numbers.write_text("a,b,c,d,e,f\n1,2,3,4,5,6\n")
    result = predict(spec, run, numbers, tmp_path / "p.csv")
    assert result.exit_code == 2 and "model's feature columns only" in result.output


def test_top_k_above_the_classes_warns_once_and_one_prediction_is_singular(runs, tmp_path):
    spec, run = runs["iris"]
    source = tmp_path / "one.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    out = tmp_path / "p.csv"
    result = predict(spec, run, source, out, "--top-k", 10, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote 1 prediction to {out}\n"
    assert result.stderr == "warning: --top-k 10 is more than the model's 3 classes; listing 3\n"
    assert "top3_class" in read_csv(out)[0] and "top4_class" not in read_csv(out)[0]
    spec, run = runs["images"]                     # 2 classes: the default 3 is capped silently
    result = predict(spec, run, runs["root"] / "images", tmp_path / "q.csv", "--device", "cpu")
    assert result.exit_code == 0 and result.stderr == ""
