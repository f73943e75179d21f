"""The parts of data-parallel training that need no process group: the spec section,
the launcher's environment, replica shards, the reverse pass's ``ready`` reports,
gradient buckets and the world-size check on resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trainctl as tc
from trainctl.data import Dataset
from trainctl.data.splits import replica_shard
from trainctl.errors import DataError, SpecErrors
from trainctl.spec import Spec, SpecDoc
from trainctl.spec.distribute import DistributedError, World
from trainctl.train.distributed import GradientBuckets, resolve_backend

BASE = {"name": "x", "data": {"source": {"type": "blobs"}},
        "model": {"input_shape": [2], "layers": [{"type": "dense", "units": 1}]},
        "loss": {"type": "mean_squared_error"}, "optimizer": {"type": "sgd"}}


def test_distribute_section_defaults_and_located_errors():
    spec = Spec.from_doc(SpecDoc("<t>", {**BASE, "distribute": {}}))
    assert spec.distribute.model_dump() == {"strategy": "data_parallel", "backend": "auto",
                                            "sync_batch_norm": False, "bucket_mb": 25.0,
                                            "timeout_s": 60.0}
    assert Spec.from_doc(SpecDoc("<t>", BASE)).distribute is None
    bad = {**BASE, "distribute": {"backend": "mpi", "strategy": "mirrored", "buckets": 3,
                                  "timeout_s": 0}}
    with pytest.raises(SpecErrors) as exc:
        Spec.from_doc(SpecDoc("<t>", bad))
    text = str(exc.value)
    for key in ("distribute.backend", "distribute.strategy", "distribute.buckets",
                "distribute.timeout_s"):
        assert key in text, text


def test_world_from_the_launcher_environment():
    assert World.from_env({}) is None
    w = World.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (w.rank, w.size, w.local_rank, w.is_main) == (3, 4, 1, False)
    for env in ({"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two"}):
        with pytest.raises(DistributedError):
            World.from_env(env)


def test_resolve_backend():
    assert resolve_backend("auto", torch.device("cpu")) == "gloo"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "nccl"
    with pytest.raises(DistributedError, match="nccl needs a CUDA device"):
        resolve_backend("nccl", torch.device("cpu"))


@pytest.mark.parametrize("n, shards", [(11, 2), (12, 3), (7, 7), (100, 8)])
def test_replica_shards_are_disjoint_equal_and_cover_the_shuffled_epoch(n, shards):
    ds = Dataset.from_tensor_slices(np.arange(n)).shuffle(n, seed=4)
    for epoch in (0, 1):
        order = [int(v) for v in ds.iterate(epoch=epoch)]
        parts = [[int(v) for v in replica_shard(ds, shards, i).iterate(epoch=epoch)]
                 for i in range(shards)]
        assert len({len(p) for p in parts}) == 1  # equal sizes: as many batches per rank
        kept = n - n % shards
        assert sorted(sum(parts, [])) == sorted(order[:kept])
        assert all(parts[i] == order[i:kept:shards] for i in range(shards))
    with pytest.raises(DataError, match="cannot be shared by 5 replicas"):
        replica_shard(ds.take(3), 5, 0)


def test_ready_reports_each_gradient_once_it_is_final_during_the_pass():
    w1 = tc.Variable(torch.randn(3, 4, dtype=torch.float64), name="w1")
    w2 = tc.Variable(torch.randn(4, 2, dtype=torch.float64), name="w2")
    x = tc.tensor(torch.randn(5, 3, dtype=torch.float64))
    seen = []
    with tc.GradientTape() as tape:
        h = tc.ops.tanh(x @ w1)
        loss = tc.ops.sum((h @ w2) * (h @ w2)) + tc.ops.sum(w2)  # w2 used twice
    grads = tape.gradient(loss, [w1, w2], ready=lambda i, g: seen.append((i, g)))
    assert sorted(i for i, _ in seen) == [0, 1]  # each once
    for i, g in seen:
        assert g is grads[i] or torch.equal(g.data, grads[i].data)
    # float64 oracle: torch.autograd
    a1, a2 = (w1.data.clone().requires_grad_(), w2.data.clone().requires_grad_())
    hh = torch.tanh(x.data @ a1)
    ((hh @ a2) ** 2).sum().add(a2.sum()).backward()
    assert torch.allclose(grads[0].data, a1.grad) and torch.allclose(grads[1].data, a2.grad)


def test_gradient_buckets_fill_in_reverse_order_up_to_their_size():
    params = [tc.Variable(torch.zeros(n)) for n in (10, 300, 5, 200, 1)]
    buckets = GradientBuckets(params, bucket_bytes=4 * 256, world_size=2)
    members = [b["members"] for b in buckets.buckets]
    assert members == [[4, 3, 2], [1], [0]]  # 1 + 200 + 5 floats fit in 256; +300 do not
    assert sorted(sum(members, [])) == list(range(5))
    one = GradientBuckets(params, bucket_bytes=2**20, world_size=1)
    assert [b["members"] for b in one.buckets] == [[4, 3, 2, 1, 0]]


def test_ready_reports_the_last_layer_before_the_pass_reaches_the_first():
    w1 = tc.Variable(torch.randn(3, 4), name="w1")
    w2 = tc.Variable(torch.randn(4, 2), name="w2")
    x = tc.tensor(torch.randn(5, 3))
    events = []

    def ready(i, g):
        events.append(i)

    with tc.GradientTape() as tape:
        loss = tc.ops.sum(tc.ops.tanh(tc.ops.tanh(x @ w1) @ w2))
    tape.gradient(loss, [w1, w2], ready=ready)
    assert events == [1, 0]


@pytest.mark.parametrize("form", ["v0", "sections"])
def test_prepare_gives_each_rank_its_shard_of_the_train_split(form):
    from trainctl.train import prepare

    data = ({"source": {"type": "blobs", "n_samples": 41}, "split": {"validation": 0.0,
             "test": 0.0}, "batch_size": 4} if form == "v0" else
            {"source": {"type": "blobs", "n_samples": 41},
             "split": {"validation": 0.0, "test": 0.0},
             "train": {"steps": [{"type": "shuffle", "buffer_size": 100, "seed": 1},
                                 {"type": "batch", "batch_size": 4}]}})
    spec = Spec.from_doc(SpecDoc("<t>", {**BASE, "device": "cpu", "data": data}))
    whole = [b[0] for b in prepare(spec).splits.train.iterate(epoch=1)]
    order = np.concatenate(whole)
    ranks = [[b[0] for b in prepare(spec, shard=(2, r)).splits.train.iterate(epoch=1)]
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5  # 20 elements each: 4+4+4+4+4
    for r in (0, 1):
        np.testing.assert_array_equal(np.concatenate(ranks[r]), order[:40][r::2])
