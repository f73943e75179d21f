"""The example specs reach their accuracy bars (issue: blobs >= 0.97, digits >= 0.95,
iris >= 0.90 test accuracy), trained through the library exactly as `trainctl train` does."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainctl.spec import load_spec
from trainctl.train import Trainer, evaluate, prepare

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.slow
@pytest.mark.parametrize("name, bar", [("blobs_mlp", 0.97), ("digits_mlp", 0.95), ("iris_mlp", 0.90),
                                       ("wine_wide_deep", 0.90), ("digits_resnet", 0.97)])
def test_example_spec_reaches_accuracy_bar(name, bar):
    setup = prepare(load_spec(SPECS / f"{name}.yaml"), device="cpu")
    Trainer(setup).fit()
    result = evaluate(setup, setup.splits.test)
    assert result["accuracy"] >= bar, result
