"""bf16 runs on the CPU too: the digits specs reach their accuracy bars (test_specs_train's
digits bar, 0.95) with matmuls and convolutions in bfloat16 (trainctl.backend.precision)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainctl.spec import load_spec
from trainctl.train import Trainer, evaluate, prepare

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.slow
@pytest.mark.parametrize("name, bar", [("digits_mlp", 0.95), ("digits_cnn", 0.95)])
def test_digits_reach_their_bar_in_bf16(name, bar):
    setup = prepare(load_spec(SPECS / f"{name}.yaml", ["precision=bf16"]), device="cpu")
    Trainer(setup).fit()
    result = evaluate(setup, setup.splits.test)
    assert result["accuracy"] >= bar, result
