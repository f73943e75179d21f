"""Names a spec may use where no options follow: activations, initializers (and the
metric names, whose kinds with their options live in :mod:`.metrics`).

The functions behind them live in ``trainctl.nn`` (which imports torch); these tables let
``trainctl validate`` check a name without it. A test checks that both sides list the same
names, so a new activation is added here and registered there.
"""

from __future__ import annotations

from trainctl.errors import UnknownNameError
from trainctl.registry import Registry
from trainctl.spec.kinds.metrics import metric_kinds


def _names(kind: str, names: tuple[str, ...]) -> Registry[str]:
    registry: Registry[str] = Registry(kind)
    for name in names:
        registry.register(name)(name)
    return registry


activation_names = _names("activation", (
    "linear", "relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "gelu",
    "silu", "elu", "leaky_relu", "softsign", "hard_sigmoid", "log_sigmoid"))
initializer_names = _names("initializer", (
    "zeros", "ones", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "constant", "orthogonal", "random_uniform",
    "random_normal"))
metric_names = metric_kinds  # names with options: see trainctl.spec.kinds.metrics


def check_activation(name: str | None) -> str | None:
    """Validate an activation name inside a Config (None is allowed: no activation).

    Raises ValueError ("unknown activation 'rleu'; did you mean 'relu'?"), which the spec
    loader reports at the key's line.
    """
    if name is not None:
        _check(activation_names, name)
    return name


def check_initializer(name: str) -> str:
    """Validate an initializer name inside a Config (ValueError with "did you mean")."""
    _check(initializer_names, name)
    return name


def _check(registry: Registry[str], name: str) -> None:
    try:
        registry.get(name)
    except UnknownNameError as exc:
        raise ValueError(str(exc)) from None
