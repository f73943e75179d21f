"""No garbage-collector pauses in the step loop (issue 8): after set-up the long-lived
objects are frozen out of the collector's generations (``gc.freeze``), and a training
step leaves (almost) no container objects behind, so in 100 steps of a small spec, in
eager and in graph mode, the collector makes no full (generation 2) collection and only
a few young ones. Counted with ``gc.callbacks``."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare
from trainctl.train.loop import to_tensors

SPEC = Path(__file__).resolve().parent.parent / "specs" / "digits_mlp.yaml"
STEPS = 100


class _Collections:
    """Counts the collector's runs per generation while installed."""

    def __init__(self):
        self.count = {0: 0, 1: 0, 2: 0}

    def __call__(self, phase, info):
        if phase == "start":
            self.count[info["generation"]] += 1

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


@pytest.mark.parametrize("execution", ["eager", "graph"])
def test_the_step_loop_makes_no_full_collection(execution):
    setup = prepare(load_spec(SPEC, ["device=cpu", f"execution={execution}"]))
    trainer = Trainer(setup)
    batches = [to_tensors(b, setup.device) for b in setup.splits.train]
    for x, y in batches[:3]:  # set-up: the trace, the optimizer's slots, the freeze
        trainer.train_step(x, y)
    assert gc.get_freeze_count() > 10_000  # the model, data and modules are frozen
    assert gc.isenabled()
    with _Collections() as seen:
        for i in range(STEPS):
            trainer.train_step(*batches[i % len(batches)])
    assert seen.count[2] == 0, seen.count
    # a step leaving 35 container objects alive would trigger 5 young collections
    assert seen.count[0] + seen.count[1] <= 5, seen.count
    with _Collections() as control:  # the counter sees a full collection
        gc.collect()
    assert control.count[2] == 1
