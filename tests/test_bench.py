"""``trainctl bench``: the plain-PyTorch reference is the same model (same outputs, and the
same weights after a step of torch.optim as after ours), the layer-by-layer backward gives
the whole-model gradients, and the report's numbers are consistent. Timings themselves are
never asserted (speed is measured, not tested)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from trainctl.autodiff import GradientTape, Variable, no_grad, ops
from trainctl.check.bench import _timed, bench_batch, bench_spec, layerwise_pass
from trainctl.check.torch_layers import translate_layer
from trainctl.check.torch_ref import TorchStep, torch_loss
from trainctl.cli.app import app
from trainctl.errors import TrainctlError
from trainctl.spec import load_spec
from trainctl.train import Trainer, prepare

from test_smoke import GOOD, write

DROPOUT = GOOD.replace("    - {type: dense, units: 3}",
                       "    - {type: dropout, rate: 0.25}\n    - {type: dense, units: 3}")
SGD = GOOD.replace("optimizer: {type: adam, learning_rate: 0.02}",
                   "optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9, nesterov: true}")
SOFTMAX = GOOD.replace("    - {type: dense, units: 3}",
                       "    - {type: dense, units: 3, activation: softmax}").replace(
    "{type: sparse_categorical_crossentropy, from_logits: true}",
    "{type: categorical_crossentropy}")
BLOBS = """\
name: tiny-blobs
seed: 3
data:
  source: {type: blobs, n_samples: 200, sigma: 0.8}
  split: {validation: 0.1, test: 0.2}
  batch_size: 32
model:
  input_shape: [2]
  layers:
    - {type: dense, units: 4, activation: tanh}
    - {type: dense, units: 1}
loss: {type: binary_crossentropy, from_logits: true}
metrics: [accuracy]
optimizer: {type: adamw, learning_rate: 0.05, weight_decay: 0.1}
train: {epochs: 1}
"""


def _setup(tmp_path, text, name="spec.yaml"):
    return prepare(load_spec(write(tmp_path, name, text)), "cpu")


SIGMOID = BLOBS.replace("    - {type: dense, units: 1}",
                        "    - {type: dense, units: 1, activation: sigmoid}").replace(
    "from_logits: true", "from_logits: false")


REGULARIZED = GOOD.replace("activation: relu}", "activation: relu, kernel_regularizer: "
                           "{l1: 0.01, l2: 0.1}, bias_regularizer: {l2: 0.5}}").replace(
    "learning_rate: 0.02}", "learning_rate: 0.02, global_clipnorm: 0.5}")
CLIPPED = [SGD.replace("nesterov: true}", f"nesterov: true, {option}: 0.05}}")
           for option in ("clipnorm", "clipvalue")]


@pytest.mark.parametrize("text", [GOOD, DROPOUT, SGD, BLOBS, SOFTMAX, SIGMOID, REGULARIZED,
                                  *CLIPPED],
                         ids=["adam", "dropout", "sgd", "adamw-bce", "softmax-cce", "sigmoid-bce",
                              "l1-l2-global-clipnorm", "clipnorm", "clipvalue"])
def test_torch_reference_is_the_same_model(tmp_path, text):
    setup = _setup(tmp_path, text)
    x, y = bench_batch(setup, None)
    ref = TorchStep(setup)
    ref.model.eval()
    with no_grad():
        ours = setup.model(x, training=False).data
        ours_loss = float(ops.mean(setup.loss(y, setup.model(x, training=False))).data)
    with torch.no_grad():
        theirs = ref.model(x.data)
    torch.testing.assert_close(theirs, ours, rtol=1e-6, atol=1e-6)
    assert float(ref.loss(theirs, y.data)) == pytest.approx(ours_loss, rel=1e-6)
    if "dropout" in text:
        return  # the two draw different dropout masks: steps differ by design
    for _ in range(3):  # three steps: the optimizers' slots matter from the second on
        Trainer(setup).train_step(x, y)
        ref(x.data, y.data)
    _assert_same_weights(setup, ref)


def _assert_same_weights(setup, ref, rtol=1e-5, atol=1e-6):
    pairs = ref.translation.pairs
    assert {v.name for v, _, _ in pairs} == {v.name for v in setup.model.trainable_variables}
    for var, params, to_ours in pairs:
        torch.testing.assert_close(var.data, to_ours(*(p.detach() for p in params)),
                                   rtol=rtol, atol=atol)


def test_layerwise_backward_gives_the_whole_model_gradients(tmp_path):
    setup = _setup(tmp_path, GOOD)
    x, y = bench_batch(setup, 24)
    assert x.shape[0] == 24  # two batches of 16, cut to 24
    params = setup.model.trainable_variables
    with GradientTape() as tape:
        loss = ops.mean(setup.loss(y, setup.model(x, training=True)))
    whole = tape.gradient(loss, params)
    layerwise = layerwise_pass(setup, x, y, None)
    assert set(layerwise) == {p.name for p in params}
    for p, g in zip(params, whole):
        torch.testing.assert_close(layerwise[p.name], g.data, rtol=1e-6, atol=1e-7)


def test_bench_report_is_consistent(tmp_path):
    path = write(tmp_path, "spec.yaml", DROPOUT)
    r = bench_spec(path, iterations=4, warmup=1, compare_torch=True)
    assert [t.name for t in r.layers] == ["dense", "dropout", "dense_1", "loss"]
    assert [t.params for t in r.layers] == [40, 0, 27, 0]
    for t in r.layers:
        assert len(t.forward.seconds) == 4 and len(t.backward.seconds) == 4
        assert all(s > 0 for s in t.forward.seconds + t.backward.seconds)
    assert len(r.step.seconds) == 4 and len(r.torch["step"].seconds) == 4
    assert r.batch_size == 16 and r.samples_per_second == pytest.approx(16 / r.step.mean)
    assert r.torch["step_ratio"] == pytest.approx(r.step.mean / r.torch["step"].mean)
    assert r.torch["forward_ratio"] == pytest.approx(r.forward.mean / r.torch["forward"].mean)
    ratios = sorted(a / b for a, b in zip(r.step.seconds, r.torch["step"].seconds))
    q1, median, q3 = r.torch["step_ratio_quartiles"]
    assert median == pytest.approx((ratios[1] + ratios[2]) / 2) and q1 <= median <= q3
    assert r.memory["peak_rss_mib"] > 10 and r.memory["python_peak_mib"] >= 0
    d = r.to_dict()
    assert d["layers"][0]["forward"]["mean_ms"] == pytest.approx(r.layers[0].forward.mean * 1e3)
    assert d["layers"][0]["output_shape"] == [None, 8]


def test_bench_command(tmp_path):
    runner = CliRunner()
    path = write(tmp_path, "spec.yaml", GOOD)
    result = runner.invoke(app, ["bench", str(path), "-n", "3", "--warmup", "1",
                                 "--compare-torch", "--threads", "1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("dense_1", "sparse_categorical_", "training step", "samples/s",
                 "ratio ours/torch", "peak RSS", "1 thread(s)"):
        assert text in out
    result = runner.invoke(app, ["bench", str(path), "-n", "2", "--warmup", "0", "--json",
                                 "--batch-size", "40"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["batch_size"] == 40 and payload["iterations"] == 2
    assert "torch" not in payload and len(payload["layers"]) == 3


def test_untranslatable_parts_are_named():
    fake = SimpleNamespace(registered_name="hinge", config=SimpleNamespace())
    with pytest.raises(TrainctlError, match="no PyTorch translation of loss 'hinge'"):
        torch_loss(fake)
    with pytest.raises(TrainctlError, match="no PyTorch translation of layer type 'fancy'"):
        translate_layer(SimpleNamespace(registered_name="fancy", config=None))
    config = SimpleNamespace(activation="swoosh", units=1, use_bias=False)
    dense = SimpleNamespace(registered_name="dense", config=config, input_shape=(2,),
                            kernel=Variable(torch.zeros(2, 1)), bias=None)
    with pytest.raises(TrainctlError, match="activation 'swoosh'"):
        translate_layer(dense)


def test_optimizer_options_the_reference_cannot_reproduce_are_named(tmp_path):
    ema = GOOD.replace("learning_rate: 0.02}", "learning_rate: 0.02, use_ema: true, "
                                                "gradient_accumulation_steps: 2}")
    with pytest.raises(TrainctlError, match="gradient_accumulation_steps, use_ema"):
        TorchStep(_setup(tmp_path, ema))


def test_bench_command_user_errors(tmp_path):
    runner = CliRunner()
    path = write(tmp_path, "spec.yaml", GOOD)
    result = runner.invoke(app, ["bench", str(path), "--batch-size", "1000"])
    assert result.exit_code == 2 and "only 90 samples" in result.stderr
    typo = write(tmp_path, "typo.yaml", GOOD.replace("units: 8", "unitz: 8"))
    result = runner.invoke(app, ["bench", str(typo)])
    assert result.exit_code == 2 and "unitz" in result.stderr


DAG = GOOD.replace("""  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3}
""", """  inputs: [{name: x, shape: [4]}]
  nodes:
    - {name: d1, type: dense, units: 4, activation: tanh}
    - {name: d2, type: dense, shared_with: d1}
    - {name: twice, type: add, inputs: [d2, d2]}
    - {name: j, type: concatenate, inputs: [d1, twice]}
    - {name: out, type: dense, units: 3}
  outputs: out
""")
ROOT_SPECS = Path(__file__).resolve().parent.parent / "specs"
DAGS = [DAG, ROOT_SPECS / "wine_wide_deep.yaml", ROOT_SPECS / "digits_resnet.yaml"]
DAG_IDS = ["shared-add-concat", "wine_wide_deep", "digits_resnet"]


def _dag_setup(tmp_path, spec):
    if isinstance(spec, Path):
        return prepare(load_spec(spec), "cpu")
    return _setup(tmp_path, spec)


@pytest.mark.parametrize("spec", DAGS, ids=DAG_IDS)
def test_layerwise_backward_of_a_dag_gives_the_whole_model_gradients(tmp_path, spec):
    setup = _dag_setup(tmp_path, spec)
    assert setup.model.plan is not None and not setup.model.plan.chain
    x, y = bench_batch(setup, 16)
    params = setup.model.trainable_variables
    with GradientTape() as tape:
        loss = ops.mean(setup.loss(y, setup.model(x, training=True)))
    whole = tape.gradient(loss, params)
    layerwise = layerwise_pass(setup, x, y, None)
    assert set(layerwise) == {p.name for p in params}
    for p, g in zip(params, whole):
        torch.testing.assert_close(layerwise[p.name], g.data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", DAGS, ids=DAG_IDS)
def test_torch_reference_of_a_dag_is_the_same_model(tmp_path, spec):
    setup = _dag_setup(tmp_path, spec)
    x, y = bench_batch(setup, 32)
    ref = TorchStep(setup)
    ref.model.eval()
    with no_grad():
        ours = setup.model(x, training=False).data
    with torch.no_grad():
        torch.testing.assert_close(ref.model(x.data), ours, rtol=1e-5, atol=1e-5)
    for _ in range(3):
        Trainer(setup).train_step(x, y)
        ref(x.data, y.data)
    _assert_same_weights(setup, ref, rtol=1e-4, atol=1e-5)


def test_bench_times_every_node_of_a_dag(tmp_path):
    r = bench_spec(write(tmp_path, "dag.yaml", DAG), iterations=2, warmup=1, compare_torch=True)
    assert [(t.name, t.type, t.params) for t in r.layers] == [
        ("d1", "dense", 20), ("d2", "dense", 0), ("twice", "add", 0),
        ("j", "concatenate", 0), ("out", "dense", 27), ("loss", "sparse_categorical_"
                                                       "crossentropy", 0)]
    assert r.layers[3].output_shape == [None, 8]
    for t in r.layers:
        assert len(t.forward.seconds) == 2 and len(t.backward.seconds) == 2
    assert len(r.torch["step"].seconds) == 2


def test_timed_synchronizes_cuda_around_the_timed_region(monkeypatch):
    events = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    seconds, value = _timed(lambda: events.append("run") or 7, torch.device("cuda"))
    assert events == ["sync", "run", "sync"] and value == 7 and seconds >= 0
    events.clear()
    _timed(lambda: events.append("run"), torch.device("cpu"))
    assert events == ["run"]  # the CPU runs synchronously: nothing to wait for
