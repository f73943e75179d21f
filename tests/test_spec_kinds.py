"""trainctl.spec.kinds, the torch-free half of every registered layer, loss and optimizer:
both halves list the same names, the torch classes take their Config and rules from their
kind, and the shape rules agree with the shapes the layers really compute."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import trainctl as tc
from trainctl.errors import ShapeError
from trainctl.nn import activations, initializers, layers, losses, metrics
from trainctl.optim import optimizers
from trainctl.spec import kinds

PAIRS = [(layers, kinds.layer_kinds), (losses, kinds.loss_kinds),
         (optimizers, kinds.optimizer_kinds)]


@pytest.mark.parametrize("torch_side, kind_side", PAIRS, ids=["layers", "losses", "optimizers"])
def test_every_registered_class_has_its_kind(torch_side, kind_side):
    assert torch_side.names() == kind_side.names()
    for name, cls in torch_side.items():
        kind = kind_side.get(name)
        assert issubclass(cls, kind), f"{cls.__name__} must derive from kinds.{kind.__name__}"
        assert cls.Config is kind.Config, name
        assert cls.registered_name == kind.registered_name == name


@pytest.mark.parametrize("torch_side, names", [(activations, kinds.activation_names),
                                               (initializers, kinds.initializer_names),
                                               (metrics, kinds.metric_names)],
                         ids=["activations", "initializers", "metrics"])
def test_name_tables_match_the_registries(torch_side, names):
    assert torch_side.names() == names.names()


def test_importing_kinds_loads_no_torch():
    code = "import sys, trainctl.spec.kinds; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name, options, shape", [
    ("dense", {"units": 3}, (5,)),
    ("dense", {"units": 7, "activation": "relu"}, (4, 6)),
    ("dense", {"units": 1, "use_bias": False}, (2, 3, 4)),
    ("flatten", {}, (2, 3, 4)),
    ("flatten", {}, (6,)),
    ("dropout", {"rate": 0.5}, (3, 2)),
    ("activation", {"activation": "softmax"}, (4, 5)),
])
def test_shape_rule_matches_the_computed_shape(name, options, shape):
    kind = kinds.layer_kinds.get(name)
    config = kind.Config(**options)
    layer = layers.get(name)(config)
    built = layer.build(shape)
    y = layer(tc.tensor(torch.randn(2, *shape)), training=True)
    assert tuple(y.shape[1:]) == built == kind.compute_output_shape(shape, config)


def test_shape_rule_errors_say_what_was_needed():
    with pytest.raises(ShapeError) as exc:
        kinds.Dense.compute_output_shape((), kinds.Dense.Config(units=2))
    assert str(exc.value) == "dense needs inputs with a feature axis, got shape []"


@pytest.mark.parametrize("name, classes, expected", [
    ("sparse_categorical_crossentropy", 10, (10,)), ("categorical_crossentropy", 3, (3,)),
    ("binary_crossentropy", 2, (1,)), ("binary_crossentropy", 3, None),
    ("mean_squared_error", None, None), ("sparse_categorical_crossentropy", None, None),
])
def test_loss_output_requirements(name, classes, expected):
    assert kinds.loss_kinds.get(name).expected_output(classes) == expected
    assert losses.get(name)().expected_output(classes) == expected


def test_name_checks_suggest_close_names():
    assert kinds.check_activation(None) is None and kinds.check_activation("gelu") == "gelu"
    with pytest.raises(ValueError, match="unknown activation 'rleu'; did you mean 'relu'?"):
        kinds.check_activation("rleu")
    with pytest.raises(ValueError, match="unknown initializer 'he_norml'; did you mean"):
        kinds.check_initializer("he_norml")
