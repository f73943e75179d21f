"""Optimizers: update Variables in place from their gradients.

Registered (in :data:`optimizers`): ``sgd`` (:class:`SGD`), ``adam`` (:class:`Adam`),
``adamw`` (:class:`AdamW`). Build one by name with :func:`build_optimizer`.
"""

from trainctl.optim.base import Optimizer, OptimizerConfig, build_optimizer, optimizers
from trainctl.optim.sgd import SGD, sgd_update
from trainctl.optim.adam import Adam, AdamW, adam_update

__all__ = ["Optimizer", "OptimizerConfig", "optimizers", "build_optimizer",
           "SGD", "Adam", "AdamW", "sgd_update", "adam_update"]
