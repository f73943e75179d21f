"""Resume and the spec: safe changes allowed and listed, incompatible ones refused with
the list, optimizer changes applied only when asked; the checkpoint schedule, best and
pruning, and what state.json records."""

from __future__ import annotations

import json

import pytest

from resume_helpers import StopAt, final_weights, make_spec, new_run, records, resume_run, same_run
from trainctl.errors import CheckpointError
from trainctl.io import CheckpointStore, load_checkpoint


def test_resume_of_a_complete_run_and_more_epochs(tmp_path):
    five = tmp_path / "five"
    new_run(five, make_spec(epochs=5)).fit()
    run = tmp_path / "run"
    new_run(run, make_spec()).fit()
    _, plan, _ = resume_run(run, make_spec())
    assert plan.complete and plan.entry.name == "final"
    trainer, plan, _ = resume_run(run, make_spec(epochs=5))
    assert not plan.complete
    assert [str(c) for c in plan.changes] == ["train.epochs: 3 -> 5"]
    assert [c.kind for c in plan.changes] == ["safe"]
    trainer.fit()
    assert same_run(run, five)
    with pytest.raises(CheckpointError, match="has completed 5 epochs, but the spec trains 2"):
        resume_run(run, make_spec(epochs=2))


def edited(old: str, new: str):
    text = make_spec().to_yaml()
    assert text.count(old) == 1, old
    return make_spec(text.replace(old, new))


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("stopped") / "run"
    new_run(run, make_spec(), StopAt(13)).fit()
    return run


@pytest.mark.parametrize("old,new,listed", [
    ("units: 8", "units: 16", ["model.layers[0].units: 8 -> 16"]),
    ("type: adam", "type: sgd", ["optimizer.type: 'adam' -> 'sgd'"]),
    ("batch_size: 16", "batch_size: 32", ["data.batch_size: 16 -> 32"]),
    ("rate: 0.3", "rate: 0.5", ["model.layers[1].rate: 0.3 -> 0.5"]),
    ("seed: 5", "seed: 6", ["seed: 5 -> 6"]),
])
def test_incompatible_spec_changes_refuse_with_the_list(stopped_run, old, new, listed):
    with pytest.raises(CheckpointError) as exc:
        resume_run(stopped_run, edited(old, new))
    lines = str(exc.value).splitlines()
    assert lines[0].startswith(f"cannot resume {str(stopped_run)!r}: the spec changed in ways "
                               f"that break the saved state (step-000000013)")
    assert [line.strip() for line in lines[1:-1]] == listed
    assert "--init-from" in lines[-1]


def test_several_changes_are_all_listed_and_safe_ones_allowed(stopped_run):
    text = edited("units: 8", "units: 4").to_yaml().replace("name: tiny-resume", "name: renamed")
    with pytest.raises(CheckpointError) as exc:
        resume_run(stopped_run, make_spec(text.replace("seed: 5", "seed: 9")))
    assert [line.strip() for line in str(exc.value).splitlines()[1:-1]] == [
        "model.layers[0].units: 8 -> 4", "seed: 5 -> 9"]  # the name change is safe


def test_learning_rate_change_needs_the_flag_and_is_then_applied(tmp_path):
    run = tmp_path / "run"
    new_run(run, make_spec(), StopAt(13)).fit()
    spec = edited("learning_rate: 0.02", "learning_rate: 0.005")
    with pytest.raises(CheckpointError) as exc:
        resume_run(run, spec)
    assert str(exc.value).splitlines() == [
        "the optimizer or schedule changed since the checkpoint:",
        "  optimizer.learning_rate: 0.02 -> 0.005",
        "pass --apply-optimizer-changes to continue with the spec's values, or restore the "
        "checkpoint's values in the spec"]
    trainer, plan, _ = resume_run(run, spec, apply_optimizer_changes=True)
    assert [c.kind for c in plan.changes] == ["needs_flag"]
    assert trainer.setup.optimizer.learning_rate == 0.005
    assert trainer.setup.optimizer.config.learning_rate == 0.005
    assert trainer.setup.optimizer.iterations == 13  # the moments and counters are kept
    trainer.fit()
    # the decay callback multiplies from 0.005 on: 13 → 15 (×0.8), 20, 25
    assert records(run)[-1]["learning_rate"] == pytest.approx(0.005 * 0.8 ** 3)


def test_best_checkpoint_is_kept_apart_from_pruning(tmp_path):
    text = make_spec().to_yaml().replace("keep_last: 2", "keep_last: 1").replace(
        "monitor: null", "monitor: val_loss")
    spec = make_spec(text, epochs=4)
    run = tmp_path / "run"
    new_run(run, spec).fit()
    recs = records(run)
    best_epoch = min(recs, key=lambda r: r["val_loss"])
    store = CheckpointStore(run / "checkpoints")
    assert store.pointer("best") == f"step-{best_epoch['step']:09d}"
    _, _, state = load_checkpoint(store.root / store.pointer("best"))
    assert state["callbacks"]["checkpoint_best"] == {
        "monitor": "val_loss", "mode": "min", "value": best_epoch["val_loss"],
        "checkpoint": store.pointer("best")}
    kept = {e.name for e in store.entries()}
    assert kept == {"final", store.pointer("best"), "step-000000036"}


def test_schedule_of_saves(tmp_path):
    every_epoch = make_spec(make_spec().to_yaml().replace("every_n_steps: 4", "every_n_steps: null")
                            .replace("keep_last: 2", "keep_last: null"))
    run = tmp_path / "a"
    new_run(run, every_epoch).fit()
    assert sorted(e.name for e in CheckpointStore(run / "checkpoints").entries()) == [
        "final", "step-000000009", "step-000000018", "step-000000027"]
    none = make_spec(every_epoch.to_yaml().replace("every_epoch: true", "every_epoch: false"))
    run = tmp_path / "b"
    new_run(run, none).fit()
    assert [e.name for e in CheckpointStore(run / "checkpoints").entries()] == ["final"]
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    assert (state["kind"], state["step"], state["epoch"], state["data"]) == (
        "final", 27, 3, {"epoch": 3, "batch": 0, "batches_per_epoch": 9})
    assert set(state) >= {"rng", "schedule", "callbacks", "spec", "spec_sha256", "versions",
                          "metrics_lines", "metrics", "optimizer", "seed", "spec_name"}
    assert set(state["rng"]) == {"python", "numpy", "torch_cpu", "torch_cuda", "trainctl"}
    assert state["schedule"] is None and state["metrics_lines"] == 3
    assert state["callbacks"]["decay"] == {"count": 27}
    assert final_weights(run).keys() == {"dense/kernel", "dense/bias", "dense_1/kernel",
                                         "dense_1/bias"}


def test_spec_hash_is_that_of_the_resolved_spec(tmp_path):
    import hashlib

    run = tmp_path / "run"
    trainer = new_run(run, make_spec())
    trainer.fit()
    state = json.loads((run / "checkpoints" / "final" / "state.json").read_text())
    canonical = json.dumps(trainer.setup.resolved, sort_keys=True, separators=(",", ":"))
    assert state["spec_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert state["spec"] == trainer.setup.resolved


def test_monitor_must_name_a_record_value(tmp_path):
    from trainctl.errors import SpecErrors

    text = make_spec().to_yaml().replace("monitor: null", "monitor: val_acc")
    with pytest.raises(SpecErrors) as exc:
        new_run(tmp_path / "run", make_spec(text))
    line = text.splitlines().index("  monitor: val_acc") + 1
    assert str(exc.value) == (
        f"tiny.yaml:{line}:12: checkpoint.monitor: 'val_acc' is not a value of the epoch "
        f"records; did you mean 'val_accuracy'? known: loss, accuracy, val_loss, "
        f"val_accuracy, learning_rate")
