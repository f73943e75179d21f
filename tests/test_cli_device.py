"""Devices: one shared --device (and --precision) option on every command that runs a
model, auto says what it took, an absent device is one clear error, every piece of training
state lives on the chosen device, and a run evaluates on the CPU whatever it trained on."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from control_helpers import make_spec, spec_text
from trainctl.backend import available_devices
from trainctl.cli.app import app
from trainctl.train import Trainer, prepare

MODEL_COMMANDS = ("train", "eval", "smoke", "doctor", "bench", "summary", "predict")
CUDA = pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device")])


def _option(command: str, flag: str):
    click_app = typer.main.get_command(app)
    return next((p for p in click_app.commands[command].params if flag in p.opts), None)


def test_every_model_command_has_the_one_shared_device_option():
    helps = {name: _option(name, "--device").help for name in MODEL_COMMANDS}
    assert len(set(helps.values())) == 1, helps
    assert "auto" in helps["train"] and "cuda:N" in helps["train"]
    assert _option("train", "--precision") is not None and _option("eval", "--precision")


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(spec_text(train="{epochs: 1}").replace("device: cpu\n", ""))
    return path


def test_an_absent_device_is_one_error_listing_what_exists(spec_file, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec_file), "--device", "cuda:7",
                                      "--run-dir", str(run)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'cuda:7' is not available" in lines[0]
    assert f"available: {', '.join(available_devices())}" in lines[0]
    assert not run.exists()
    bad = CliRunner().invoke(app, ["train", str(spec_file), "--precision", "fp8"])
    assert bad.exit_code == 2 and "precision" in bad.stderr and "fp8" in bad.stderr


def test_auto_says_which_device_it_took_and_precision_is_recorded(spec_file, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(spec_file), "--run-dir", str(run),
                                      "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    first = result.stdout.splitlines()[0]
    assert first.endswith(f"(device auto took {available_devices()[0]})"), first
    assert "precision: bf16" in (run / "spec.yaml").read_text()
    # evaluated on the CPU, in float32: the run's device and precision are not part of the model
    out = CliRunner().invoke(app, ["eval", str(spec_file), "--checkpoint", str(run),
                                   "--device", "cpu", "--precision", "fp32", "--json"])
    assert out.exit_code == 0, out.output
    assert 0.0 <= json.loads(out.stdout.strip().splitlines()[-1])["accuracy"] <= 1.0


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_parameters_slots_batches_and_metric_accumulators_live_on_the_device(device):
    text = spec_text(train="{steps: 3}", optimizer="{type: adam, learning_rate: 0.01}")
    setup = prepare(make_spec(text), device=device)
    seen = []

    class Look(Trainer):
        def train_step(self, x, y):
            seen.extend([x.data, y.data])
            return super().train_step(x, y)

    trainer = Look(setup)
    trainer.fit()
    want = torch.device(device).type
    slots, _ = setup.optimizer.state_dict()
    tensors = {**{f"var {v.name}": v.data for v in setup.model.variables},
               **{f"slot {k}": v for k, v in slots.items()},
               **{f"batch {i}": t for i, t in enumerate(seen)},
               "epoch loss sum": trainer._epoch_sums[0]}
    for m in setup.metrics:
        tensors.update({f"metric {m.name}.{k}": v for k, v in vars(m).items()
                        if isinstance(v, torch.Tensor)})
    assert len(slots) == 8 and len(seen) == 6
    assert any(k.startswith("metric ") for k in tensors)
    assert {k: t.device.type for k, t in tensors.items()} == {k: want for k in tensors}
