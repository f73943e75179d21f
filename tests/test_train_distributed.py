"""Data-parallel training (trainctl.train.distributed): 2 ranks on gloo over loopback,
forked from this process, against one process with the global batch and against a
float64 torch.autograd oracle of batch normalization (per-replica and synchronised)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import trainctl.nn.layers.sync_batch_norm  # noqa: F401  (imported before the ranks fork)
import trainctl.train.distributed  # noqa: F401
from distributed_helpers import (WITH_BN, load_rank, run_ranks, train_single, write_spec)
from trainctl.spec import load_spec
from trainctl.train import prepare

STEPS = 16  # 13 global batches of 16 per epoch: the run crosses into the second epoch


@pytest.fixture(scope="module", autouse=True)
def warm(tmp_path_factory):
    """One run here first, so the forked ranks inherit every lazily imported module."""
    train_single(write_spec(tmp_path_factory.mktemp("warm") / "s.yaml", batch=8, steps=1))


def global_rel(a: dict, b: dict, keys=None) -> float:
    """||a - b|| / ||b|| over all the (given) variables together."""
    keys = sorted(keys if keys is not None else b)
    da = np.concatenate([a[k].astype(np.float64).ravel() for k in keys])
    db = np.concatenate([np.asarray(b[k], dtype=np.float64).ravel() for k in keys])
    return float(np.linalg.norm(da - db) / np.linalg.norm(db))


@pytest.mark.parametrize("optimizer", ["{type: sgd, learning_rate: 0.1, momentum: 0.9}",
                                       "{type: adam, learning_rate: 0.01}"],
                         ids=["sgd_momentum", "adam"])
def test_two_ranks_of_batch_b_match_one_process_of_batch_2b(tmp_path, optimizer):
    write_spec(tmp_path / "two.yaml", batch=8, optimizer=optimizer, steps=STEPS)
    write_spec(tmp_path / "one.yaml", batch=16, optimizer=optimizer, steps=STEPS)
    assert run_ranks(tmp_path / "two.yaml", tmp_path) == [0, 0]
    history: list = []
    one = train_single(tmp_path / "one.yaml", history)
    r0, r1 = load_rank(tmp_path, 0), load_rank(tmp_path, 1)
    assert all(np.array_equal(r0[k], r1[k]) for k in r0)  # replicas stay identical
    assert global_rel(r0, one) < 1e-6
    initial = {v.name: v.data.numpy() for v in prepare(load_spec(tmp_path / "one.yaml"))
               .model.variables}
    assert global_rel(initial, one) > 1e-2  # it did train: the comparison can fail
    # epoch 1's record: loss and accuracy summed over both ranks' shards, the same on both
    rec0, rec1 = (json.loads((tmp_path / f"record-{r}.json").read_text()) for r in (0, 1))
    assert rec0 == rec1 and rec0["epoch"] == history[0]["epoch"] == 1
    assert rec0["loss"] == pytest.approx(history[0]["loss"], rel=1e-6)
    assert rec0["accuracy"] == history[0]["accuracy"]


def _bn_oracle(spec_path, steps: int, per_replica: bool) -> dict[str, np.ndarray]:
    """dense → batch normalization (batch statistics) → tanh → dense, binary cross-entropy
    on logits, torch.optim.SGD(momentum=0.9), float64, torch.autograd; per_replica: the
    loss is the mean of the two halves' losses, each normalised with its own statistics
    (half r = elements r, r+2, ... of the global batch, as the shards are)."""
    setup = prepare(load_spec(spec_path))
    init = {v.name: torch.tensor(v.data.numpy(), dtype=torch.float64, requires_grad=v.trainable)
            for v in setup.model.variables}
    w = {k: t for k, t in init.items() if t.requires_grad}
    opt = torch.optim.SGD(list(w.values()), lr=0.1, momentum=0.9)
    eps = setup.model.layers[1].config.epsilon

    def loss_of(x, y):
        h = x @ w["dense/kernel"] + w["dense/bias"]
        mean, var = h.mean(0), h.var(0, unbiased=False)
        h = (h - mean) / torch.sqrt(var + eps) * w["batch_normalization/gamma"] \
            + w["batch_normalization/beta"]
        z = torch.tanh(h) @ w["dense_1/kernel"] + w["dense_1/bias"]
        return torch.nn.functional.binary_cross_entropy_with_logits(z.reshape(-1), y)

    done, epoch = 0, 0
    while done < steps:
        for x, y in setup.splits.train.iterate(epoch=epoch):
            x, y = torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
            parts = [(x[r::2], y[r::2]) for r in (0, 1)] if per_replica else [(x, y)]
            loss = sum(loss_of(*p) for p in parts) / len(parts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    return {k: t.detach().numpy() for k, t in w.items()}


@pytest.mark.parametrize("sync", [False, True], ids=["per_replica", "sync_batch_norm"])
def test_batch_normalization_statistics(tmp_path, sync):
    write_spec(tmp_path / "two.yaml", batch=8, layers=WITH_BN, sync=sync, steps=STEPS)
    write_spec(tmp_path / "one.yaml", batch=16, layers=WITH_BN, steps=STEPS)
    assert run_ranks(tmp_path / "two.yaml", tmp_path) == [0, 0]
    r0, r1 = load_rank(tmp_path, 0), load_rank(tmp_path, 1)
    trainable = [k for k in r0 if "moving" not in k]
    assert all(np.array_equal(r0[k], r1[k]) for k in trainable)
    oracle = _bn_oracle(tmp_path / "one.yaml", STEPS, per_replica=not sync)
    other = _bn_oracle(tmp_path / "one.yaml", STEPS, per_replica=sync)
    assert global_rel(r0, oracle, trainable) < 1e-5
    assert global_rel(r0, other, trainable) > 1e-3  # the two semantics are told apart
    if sync:  # one process normalising the whole batch: the same, moving statistics too
        one = train_single(tmp_path / "one.yaml")
        assert global_rel(r0, one) < 1e-6 and global_rel(r1, one) < 1e-6
    else:  # per-replica moving statistics differ until rank 0's are copied (epoch end)
        assert not np.array_equal(r0["batch_normalization/moving_mean"],
                                  r1["batch_normalization/moving_mean"])


@pytest.mark.parametrize("behaviour", ["hang", "die"])
def test_a_hung_or_dead_rank_ends_the_others_with_an_error(tmp_path, behaviour):
    write_spec(tmp_path / "two.yaml", batch=8, steps=STEPS, timeout=3)
    codes = run_ranks(tmp_path / "two.yaml", tmp_path, behaviour=behaviour, timeout=40)
    assert codes[0] == 3  # rank 0 stopped on the collective's error, not killed by us
    seconds, collective, message = (tmp_path / "error-0.txt").read_text().split(" ", 2)
    assert collective == "True", message
    assert float(seconds) < 3 + 10
