"""Training: spec → setup (data, model, loss, optimizer) → the loop → run directory."""

from trainctl.train.callbacks import Callback
from trainctl.train.loop import Trainer, evaluate
from trainctl.train.setup import Setup, prepare

__all__ = ["Callback", "Trainer", "evaluate", "Setup", "prepare"]
