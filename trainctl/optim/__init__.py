"""Optimizers: update Variables in place from their gradients.

Registered (in :data:`optimizers`): ``sgd`` (:class:`SGD`), ``adam`` (:class:`Adam`),
``adamw`` (:class:`AdamW`), ``rmsprop`` (:class:`RMSprop`), ``adagrad``
(:class:`Adagrad`), ``adadelta`` (:class:`Adadelta`), ``lion`` (:class:`Lion`). Build one
by name with :func:`build_optimizer`. Every optimizer also clips gradients, accumulates
them over micro-batches, takes per-parameter learning rates and weight decay (groups) and
keeps a moving average of the weights, as its config says (see :mod:`.base`).
"""

from trainctl.optim.base import Optimizer, OptimizerConfig, build_optimizer, optimizers
from trainctl.optim.sgd import SGD, sgd_update
from trainctl.optim.adam import Adam, AdamW, adam_update
from trainctl.optim.rmsprop import RMSprop, rmsprop_update
from trainctl.optim.adagrad import Adagrad, adagrad_update
from trainctl.optim.adadelta import Adadelta, adadelta_update
from trainctl.optim.lion import Lion, lion_update
from trainctl.optim.accumulation import GradientAccumulator
from trainctl.optim.clipping import (clip_by_global_norm, clip_by_norm, clip_by_value,
                                     global_norm)
from trainctl.optim.ema import WeightAverage, averaged_weights

__all__ = ["Optimizer", "OptimizerConfig", "optimizers", "build_optimizer",
           "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Lion",
           "sgd_update", "adam_update", "rmsprop_update", "adagrad_update",
           "adadelta_update", "lion_update", "GradientAccumulator", "WeightAverage",
           "averaged_weights", "clip_by_global_norm", "clip_by_norm", "clip_by_value",
           "global_norm"]
