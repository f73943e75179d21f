"""No hidden host-device synchronisation in the training loop: a hook on every torch.Tensor
method that reads a value back to the host counts the calls made during each step; steps
that write no step record make none (the default non-finite guard included)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from control_helpers import make_spec, new_trainer, spec_text
from trainctl.train import Callback

# the ways a tensor's value reaches the host (on CUDA each waits for the device)
READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__",
         "__array__")
LOG_EVERY = 10

DATA = "{source: {type: blobs, n_samples: 1200, sigma: 0.9}, split: {validation: 0.1, " \
       "test: 0.2}, batch_size: 16, shuffle: true}"
MODEL = ("{input_shape: [2], layers: [{type: dense, units: 8, activation: relu}, "
         "{type: batch_normalization}, {type: dropout, rate: 0.3}, {type: dense, units: 1}]}")


class _Counting:
    """Counts reads by the trainer step at the time of the call (None: not training)."""

    def __init__(self):
        self.trainer = None
        self.by_step: Counter = Counter()
        self.names: dict[int, list[str]] = {}

    def install(self, monkeypatch) -> None:
        for name in READS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def read(tensor, *args, **kwargs):
            if self.trainer is not None:
                step = self.trainer.step
                self.by_step[step] += 1
                self.names.setdefault(step, []).append(name)
            return original(tensor, *args, **kwargs)
        return read


class _Ends(Callback):
    def __init__(self, counting: _Counting):
        self.counting = counting

    def on_train_end(self, history) -> None:
        self.counting.trainer = None


@pytest.mark.parametrize("callbacks", ["[]", "[{type: nonfinite_guard, policy: off}]"])
def test_steps_without_a_record_read_nothing_from_the_device(monkeypatch, callbacks):
    text = spec_text(train=f"{{steps: 40, log_every_n_steps: {LOG_EVERY}}}", callbacks=callbacks,
                     optimizer="{type: adam, learning_rate: 0.01, clipnorm: 1.0}")
    text = text.replace(text[text.index("data:"):text.index("loss:")],
                        f"data: {DATA}\nmodel: {MODEL}\n")
    counting = _Counting()
    trainer = new_trainer(make_spec(text), None, _Ends(counting))
    assert trainer.setup.splits.train.cardinality() > 40  # all steps in one epoch
    counting.trainer = trainer
    counting.install(monkeypatch)
    trainer.fit()
    assert trainer.step == 40
    quiet = {step: counting.names.get(step) for step in range(1, 40) if step % LOG_EVERY}
    assert all(names is None for names in quiet.values()), quiet
    # the hook works: logging steps read the running loss and metrics
    assert all(counting.by_step[step] > 0 for step in (10, 20, 30))
