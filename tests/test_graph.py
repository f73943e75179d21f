"""Graph tests: spec → model with shapes inferred layer by layer (checked against hand
counts), layer naming and located spec errors, state_dict round trip and checkpoint
errors, input shape errors. torch is used only as an oracle."""

from __future__ import annotations

import pytest
import torch

import trainctl as tc
from trainctl.errors import CheckpointError, ShapeError, SpecErrors
from trainctl.graph import LayerShapeError, Model, build_layers, build_model
from trainctl.nn.layers import Dense
from trainctl.spec import Spec, SpecDoc

HEAD = """\
name: t
data:
  source: {type: blobs}
model:
  input_shape: %s
  layers:
"""
TAIL = """\
loss: {type: sparse_categorical_crossentropy, from_logits: true}
optimizer: adam
"""


def spec_text(input_shape, *layer_lines):
    return HEAD % input_shape + "".join(f"    - {line}\n" for line in layer_lines) + TAIL


def make_spec(input_shape, *layer_lines):
    return Spec.from_doc(SpecDoc.from_text(spec_text(input_shape, *layer_lines), file="t.yaml"))


def line_of(text, needle):
    """1-based line number of the only line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) == 1, hits
    return hits[0]


MLP = ("[64]", "{type: dense, units: 128, activation: relu}", "{type: dropout, rate: 0.1}",
       "{type: dense, units: 10}")


# ---- shape inference ------------------------------------------------------------------
def test_mlp_shapes_and_parameter_counts():
    tc.manual_seed(0)
    model = build_model(make_spec(*MLP))
    assert model.name == "t"
    assert model.input_shape == (64,) and model.output_shape == (10,)
    assert model.summary() == [
        {"name": "dense", "type": "dense", "output_shape": [None, 128], "params": 64 * 128 + 128},
        {"name": "dropout", "type": "dropout", "output_shape": [None, 128], "params": 0},
        {"name": "dense_1", "type": "dense", "output_shape": [None, 10], "params": 128 * 10 + 10},
    ]
    assert model.count_params() == 64 * 128 + 128 + 128 * 10 + 10
    assert [layer.input_shape for layer in model.layers] == [(64,), (128,), (128,)]
    assert [v.name for v in model.variables] == ["dense/kernel", "dense/bias",
                                                 "dense_1/kernel", "dense_1/bias"]
    assert [v.shape for v in model.trainable_variables] == [(64, 128), (128,), (128, 10), (10,)]


def test_flatten_and_rank_3_shapes():
    model = build_model(make_spec("[2, 3, 4]", "{type: dense, units: 5, use_bias: false}",
                                  "{type: flatten}", "{type: activation, activation: tanh}",
                                  "{type: dense, units: 7}"))
    rows = [(r["output_shape"], r["params"]) for r in model.summary()]
    assert rows == [([None, 2, 3, 5], 4 * 5), ([None, 30], 0), ([None, 30], 0),
                    ([None, 7], 30 * 7 + 7)]
    x = tc.tensor(torch.randn(3, 2, 3, 4, generator=torch.Generator().manual_seed(0)))
    assert model(x).shape == (3, 7)


def test_forward_equals_torch_with_the_same_weights():
    tc.manual_seed(1)
    model = build_model(make_spec("[4]", "{type: dense, units: 6, activation: relu}",
                                  "{type: dropout, rate: 0.5}",
                                  "{type: dense, units: 3, activation: softmax}"))
    w = model.state_dict()
    xt = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    hidden = torch.relu(xt @ w["dense/kernel"] + w["dense/bias"])
    want = torch.softmax(hidden @ w["dense_1/kernel"] + w["dense_1/bias"], dim=-1)
    torch.testing.assert_close(model(tc.tensor(xt)).data, want, rtol=1e-6, atol=1e-6)


def test_build_shape_error_names_layer_and_index():
    model = Model([Dense(units=2, name="head")], ())
    with pytest.raises(LayerShapeError) as info:
        model.build()
    assert info.value.index == 0
    assert "'head'" in str(info.value) and "[]" in str(info.value)


# ---- names and spec errors ----------------------------------------------------------------
def test_automatic_names_skip_taken_ones():
    built = build_layers(make_spec("[3]", "{type: dense, units: 2, name: dense_1}",
                                   "{type: dense, units: 2}", "{type: dense, units: 2}",
                                   "{type: dropout, rate: 0.2}"))
    assert [layer.name for layer in built] == ["dense_1", "dense", "dense_2", "dropout"]


def test_automatic_name_survives_config_round_trip():
    model = build_model(make_spec(*MLP))
    second = model.layers[2]
    again = Dense.from_config(second.get_config())
    again.build((128,))
    assert [v.name for v in again.weights] == ["dense_1/kernel", "dense_1/bias"]


def test_duplicate_explicit_names_are_located():
    lines = ("{type: dense, units: 4, name: hidden}", "{type: dropout, rate: 0.1}",
             "{type: dense, units: 2, name: hidden}")
    text = spec_text("[3]", *lines)
    with pytest.raises(SpecErrors) as info:
        build_model(make_spec("[3]", *lines))
    (error,) = info.value.errors
    assert error.file == "t.yaml"
    assert error.line == line_of(text, "units: 2, name: hidden")
    assert error.key == "model.layers[2].name"
    assert "'hidden' is already used by model.layers[0]" in error.message
    assert str(error).startswith(f"t.yaml:{error.line}:")


def test_unknown_layer_type_suggests_and_all_errors_are_reported():
    lines = ("{type: dnese, units: 4}", "{type: dense, units: 0}", "{type: dropout}")
    text = spec_text("[3]", *lines)
    with pytest.raises(SpecErrors) as info:
        build_model(make_spec("[3]", *lines))
    errors = info.value.errors
    assert [e.line for e in errors] == [line_of(text, "dnese"), line_of(text, "units: 0"),
                                        line_of(text, "{type: dropout}")]
    assert errors[0].key == "model.layers[0].type"
    assert "unknown layer type 'dnese'; did you mean 'dense'?" in errors[0].message
    assert errors[1].key == "model.layers[1].units"
    assert "rate" in str(errors[2])


# ---- weights ------------------------------------------------------------------------------
def two_models():
    tc.manual_seed(0)
    a = build_model(make_spec(*MLP))
    tc.manual_seed(1)
    b = build_model(make_spec(*MLP))
    return a, b


def test_state_dict_round_trip():
    a, b = two_models()
    x = tc.tensor(torch.randn(3, 64, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(a(x).data, b(x).data)
    saved = {k: v.clone() for k, v in a.state_dict().items()}
    assert sorted(saved) == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    b.load_state_dict(saved)
    for name, value in b.state_dict().items():
        assert torch.equal(value, saved[name])
    assert torch.equal(a(x).data, b(x).data)
    # loading copies: the model does not alias the given tensors
    saved["dense/bias"].fill_(7.0)
    assert not torch.equal(b.state_dict()["dense/bias"], saved["dense/bias"])


def test_load_state_dict_missing_and_unexpected_weights():
    a, b = two_models()
    state = dict(a.state_dict())
    del state["dense_1/bias"]
    with pytest.raises(CheckpointError, match="missing dense_1/bias"):
        b.load_state_dict(state)
    state["dense_1/bias"] = torch.zeros(10)
    state["dense_2/kernel"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected dense_2/kernel"):
        b.load_state_dict(state)


def test_load_state_dict_misshaped_weight_changes_nothing():
    a, b = two_models()
    before = {k: v.clone() for k, v in b.state_dict().items()}
    state = {k: v.clone() for k, v in a.state_dict().items()}
    state["dense_1/kernel"] = torch.zeros(128, 9)
    with pytest.raises(CheckpointError) as info:
        b.load_state_dict(state)
    message = str(info.value)
    assert "'dense_1/kernel'" in message and "[128,9]" in message and "[128,10]" in message
    for name, value in b.state_dict().items():  # a failed load leaves the model as it was
        assert torch.equal(value, before[name]), name


def test_wrong_input_shape_names_both_shapes():
    model = build_model(make_spec(*MLP))
    with pytest.raises(ShapeError) as info:
        model(tc.tensor(torch.zeros(3, 32)))
    message = str(info.value)
    assert "'t'" in message and "[batch,64]" in message and "[3,32]" in message
    with pytest.raises(ShapeError, match=r"\[3\]"):
        model(tc.tensor(torch.zeros(3)))
