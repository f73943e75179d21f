"""Loss kinds: each loss's YAML options and what it needs from the model and the data,
without torch (the computation is in ``trainctl.nn.losses``; see :mod:`.layers` for how
the two halves meet)."""

from __future__ import annotations

from typing import ClassVar

from trainctl.registry import Registry
from trainctl.spec.config import Config

loss_kinds: Registry[type["LossKind"]] = Registry("loss")


class LossConfig(Config):
    """``from_logits``: the model outputs logits (false: probabilities)."""

    from_logits: bool = False


class RegressionConfig(Config):
    """No options."""


class LossKind:
    """Base of loss kinds.

    ``labels`` says what targets the loss needs: ``"classes"`` (integer class labels),
    ``"binary"`` (two classes) or ``"values"`` (any targets).
    """

    Config: ClassVar[type[Config]] = LossConfig
    registered_name: ClassVar[str]
    labels: ClassVar[str] = "values"

    @classmethod
    def expected_output(cls, num_classes: int | None,
                        label_shape: tuple[int, ...] = ()) -> tuple[int, ...] | None:
        """The model output shape (batch excluded) this loss needs for data with
        ``num_classes`` classes (None: regression) and labels of ``label_shape`` (one
        sample's), or None if it has no requirement."""
        return None


@loss_kinds.register("sparse_categorical_crossentropy")
class SparseCategoricalCrossentropy(LossKind):
    """Integer labels; output ``[classes]``, or ``[T..., classes]`` for labels ``[T...]``
    (one per position)."""

    labels = "classes"

    @classmethod
    def expected_output(cls, num_classes, label_shape=()):
        return (*label_shape, num_classes) if num_classes else None


@loss_kinds.register("categorical_crossentropy")
class CategoricalCrossentropy(LossKind):
    """One-hot or integer labels; output ``[classes]``."""

    labels = "classes"

    @classmethod
    def expected_output(cls, num_classes, label_shape=()):
        return (num_classes,) if num_classes else None


@loss_kinds.register("binary_crossentropy")
class BinaryCrossentropy(LossKind):
    """0/1 labels; output ``[1]``."""

    labels = "binary"

    @classmethod
    def expected_output(cls, num_classes, label_shape=()):
        return (1,) if num_classes == 2 else None


@loss_kinds.register("mean_squared_error")
class MeanSquaredError(LossKind):
    """Any targets."""

    Config = RegressionConfig
