"""Shared by the schedule and callback tests: a tiny spec (140 training samples in batches
of 16: 9 steps per epoch, shuffling, dropout), spec building with extra sections, runs, and
recorders."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from trainctl.io import RunDir
from trainctl.spec import Spec, SpecDoc
from trainctl.train import Callback, Trainer, prepare

BASE = """\
name: tiny-control
seed: 5
device: cpu
data:
  source: {type: blobs, n_samples: 200, sigma: 0.9}
  split: {validation: 0.1, test: 0.2}
  batch_size: 16
  shuffle: true
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
"""
STEPS_PER_EPOCH = 9


def spec_text(optimizer: str = "{type: adam, learning_rate: 0.02}", train: str = "{epochs: 3}",
              **sections: str) -> str:
    """BASE plus ``optimizer``, ``train`` and any other top-level sections (YAML flow text)."""
    text = BASE + f"optimizer: {optimizer}\ntrain: {train}\n"
    return text + "".join(f"{key}: {value}\n" for key, value in sections.items())


def make_spec(text: str | None = None, **kw) -> Spec:
    return Spec.from_doc(SpecDoc.from_text(text or spec_text(**kw), file="tiny.yaml"))


def new_trainer(spec: Spec, run: Path | None = None, *extra: Callback) -> Trainer:
    setup = prepare(spec)
    rd = RunDir(run).create(setup.resolved_yaml()) if run is not None else None
    trainer = Trainer(setup, rd, list(extra))
    for cb in extra:
        if hasattr(cb, "trainer"):
            cb.trainer = trainer
    return trainer


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "input_wait")}
            for line in lines]


def final_weights(run: Path, name: str = "final") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / name / "weights.safetensors"))


def weights_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.setup.model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder(Callback):
    """Keeps the weights after every step, the notices, the rates and the step records."""

    def __init__(self):
        self.trainer, self.weights, self.notices, self.rates = None, {}, [], {}
        self.step_records, self.losses = [], {}

    def on_batch_end(self, step, batch_size, loss):
        self.weights[step] = weights_of(self.trainer)
        self.rates[step] = self.trainer.setup.optimizer.learning_rate
        self.losses[step] = float(loss.item())

    def on_notice(self, message):
        self.notices.append(message)

    def on_step_record(self, step, record):
        self.step_records.append(record)


class StopAt(Callback):
    """Asks the trainer to stop (with a checkpoint) after step ``step``."""

    def __init__(self, step: int):
        self.step, self.trainer = step, None

    def on_batch_end(self, step, batch_size, loss):
        if step == self.step:
            self.trainer.request_stop(snapshot=True)
