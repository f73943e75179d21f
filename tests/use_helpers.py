"""Tiny trained checkpoints for the eval and predict CLI tests (tests/test_cli_predict.py,
tests/test_cli_eval_report.py), and a plain-torch oracle of their models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from trainctl.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
IRIS_CSV = ROOT / "datasets" / "iris.csv"

IRIS = f"""\
name: use-iris
seed: 0
data:
  source: {{type: csv, path: {IRIS_CSV}, label: species}}
  split: {{validation: 0.1, test: 0.2}}
  train:
    steps: [standardize, {{type: shuffle}}, {{type: batch, batch_size: 16}}]
model:
  input_shape: [4]
  layers:
    - {{type: dense, units: 8, activation: relu}}
    - {{type: dense, units: 3}}
loss: {{type: sparse_categorical_crossentropy, from_logits: true}}
metrics: [accuracy]
optimizer: {{type: adam, learning_rate: 0.05}}
train: {{epochs: 3}}
checkpoint: {{monitor: val_loss}}
"""

DIABETES = """\
name: use-diabetes
seed: 0
data:
  source: {type: diabetes}
  split: {validation: 0.1, test: 0.2}
  batch_size: 32
  standardize: true
model:
  input_shape: [10]
  layers:
    - {type: dense, units: 4, activation: relu}
    - {type: dense, units: 1}
loss: {type: mean_squared_error}
metrics: [mean_absolute_error]
optimizer: {type: adam, learning_rate: 0.01}
train: {epochs: 2}
"""

IMAGES = """\
name: use-images
seed: 0
data:
  source: {type: image_folder, path: images}
  split: {validation: 0.2, test: 0.2}
  batch_size: 8
  standardize: true
model:
  input_shape: [6, 5]
  layers:
    - {type: flatten}
    - {type: dense, units: 2}
loss: {type: sparse_categorical_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adam, learning_rate: 0.05}
train: {epochs: 3}
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def make_images(folder: Path, n: int = 12, seed: int = 0) -> None:
    """``folder/dark`` and ``folder/light``: n grayscale 5x6 (w x h) PNGs each."""
    rng = np.random.default_rng(seed)
    for name, base in (("dark", 40), ("light", 200)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = np.clip(base + rng.normal(0, 30, size=(6, 5)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / name / f"{i:02d}.png")


def train(root: Path, name: str, text: str) -> tuple[Path, Path]:
    spec = root / f"{name}.yaml"
    spec.write_text(text)
    result = invoke("train", spec, "--run-dir", root / f"run-{name}", "--quiet")
    assert result.exit_code == 0, result.output
    return spec, root / f"run-{name}"


def make_runs(root: Path) -> dict:
    make_images(root / "images")
    return {"iris": train(root, "iris", IRIS), "diabetes": train(root, "diabetes", DIABETES),
            "images": train(root, "images", IMAGES), "root": root}


def oracle(ckpt: Path, raw: np.ndarray) -> torch.Tensor:
    """The model's outputs for raw rows, in float64 plain torch: the stored standardize
    statistics, then dense layers read from weights.safetensors (relu between them)."""
    state = json.loads((ckpt / "state.json").read_text())
    x = torch.as_tensor(np.asarray(raw, np.float64)).reshape(len(raw), -1)
    for step in state["preprocessing"]:
        assert step["type"] == "standardize"
        mean, std = (torch.tensor(step["fitted"][k]["values"], dtype=torch.float64) for k in ("mean", "std"))
        x = (x - mean.reshape(-1)) / std.reshape(-1)
    w = load_file(str(ckpt / "weights.safetensors"))
    layers = sorted({k.split("/")[0] for k in w}, key=lambda n: (len(n), n))
    for i, name in enumerate(layers):
        x = x @ w[f"{name}/kernel"].double() + w[f"{name}/bias"].double()
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x


def iris_rows() -> tuple[np.ndarray, list[str]]:
    import csv

    with open(IRIS_CSV) as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([[float(r[k]) for k in r if k != "species"] for r in rows], np.float32)
    return x, [r["species"] for r in rows]
