"""``device: auto`` says which device it took, in train's words, on every command that
places a model (eval, predict, bench, summary, smoke, doctor), once, on stderr, so --json
output stays one JSON object; a device named outright is not announced. Export always
places the model on the CPU, so it has nothing to say. The choice itself (CUDA, then MPS,
then CPU) is checked with faked availability."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from control_helpers import spec_text
from trainctl.backend import asks_auto, resolve_device
from trainctl.cli.app import app
from trainctl.cli.common import auto_device_words, say_auto_device

TOOK_CPU = "device auto took cpu"


def _fake(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, took", [(2, True, "cuda:0"), (1, False, "cuda:0"),
                                             (0, True, "mps"), (0, False, "cpu")])
def test_auto_takes_cuda_then_mps_then_cpu_and_says_so(monkeypatch, capsys, cuda, mps, took):
    _fake(monkeypatch, cuda, mps)
    device = resolve_device("auto")
    assert str(device) == took
    say_auto_device("auto", device)
    say_auto_device(None, device)             # no device in the spec or the flag: auto too
    say_auto_device(" AUTO ", device)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"device auto took {took}\n" * 3


def test_a_named_device_is_not_announced(monkeypatch, capsys):
    _fake(monkeypatch, cuda=2, mps=True)
    for name in ("cpu", "cuda", "cuda:1", "mps"):
        say_auto_device(name, resolve_device(name))
        assert not asks_auto(name)
    say_auto_device(torch.device("cpu"), torch.device("cpu"))
    assert capsys.readouterr() == ("", "")


def test_train_header_uses_the_same_words():
    from trainctl.cli.progress import PlainReporter

    said = []
    reporter = PlainReporter(console=None)
    reporter.say = said.append
    info = {"epochs": 1, "steps": None, "device": "cuda:0", "params": 3, "train_size": 4}
    reporter.on_train_begin({**info, "device_auto": True})
    reporter.on_train_begin({**info, "device_auto": False})
    assert said[0].endswith(f"({auto_device_words('cuda:0')})")
    assert said[0].endswith("(device auto took cuda:0)") and "auto" not in said[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A spec without ``device`` (auto) and a one-epoch run of it, trained on the CPU."""
    tmp = tmp_path_factory.mktemp("auto")
    spec = tmp / "tiny.yaml"
    spec.write_text(spec_text(train="{epochs: 1}").replace("device: cpu\n", ""))
    run = tmp / "run"
    result = CliRunner().invoke(app, ["train", str(spec), "--run-dir", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "device auto took" not in result.stdout   # named outright on the command line
    np.save(tmp / "rows.npy", np.array([[0.5, -1.0], [1.0, 0.2]], np.float32))
    return spec, run, tmp


def _commands(spec, run, tmp):
    ckpt = ["--checkpoint", str(run)]
    return {
        "eval": (["eval", str(spec), *ckpt, "--json"], True),
        "predict": (["predict", str(spec), *ckpt, "--input", str(tmp / "rows.npy"),
                     "-o", str(tmp / "preds.jsonl")], False),
        "summary": (["summary", str(spec)], False),
        "bench": (["bench", str(spec), "-n", "1", "--warmup", "0", "--json"], True),
        "smoke": (["smoke", str(spec), "--steps", "2", "--overfit-steps", "2", "--json"], True),
        "doctor": (["doctor", str(spec), "--steps", "2", "--overfit-steps", "2",
                    "--grad-samples", "2", "--json"], True),
    }


@pytest.mark.parametrize("command", ["eval", "predict", "summary", "bench", "smoke", "doctor"])
def test_every_model_command_says_once_what_auto_took(trained, command):
    spec, run, tmp = trained
    args, as_json = _commands(spec, run, tmp)[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code in (0, 1), result.output    # doctor/smoke may warn or fail a check
    assert result.stderr.splitlines().count(TOOK_CPU) == 1, result.stderr
    assert TOOK_CPU not in result.stdout
    if as_json:
        json.loads(result.stdout)                          # stdout is still one JSON object
    named = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert named.exit_code == result.exit_code, named.output
    assert "device auto took" not in named.stderr + named.stdout


def test_smoke_says_it_once_for_many_specs(trained, tmp_path):
    spec, _, _ = trained
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(spec.read_text())
    result = CliRunner().invoke(app, ["smoke", str(tmp_path), "--steps", "2",
                                      "--overfit-steps", "2", "--json"])
    assert len(json.loads(result.stdout)["specs"]) == 2
    assert result.stderr.splitlines().count(TOOK_CPU) == 1, result.stderr
