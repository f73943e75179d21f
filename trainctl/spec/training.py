"""The ``train:`` section of a spec: how long to train, how often to evaluate and log.

::

    train:
      epochs: 30                # or steps: 5000 (optimizer steps); not both (default: 10 epochs)
      eval_batch_size: 256
      eval_every_n_epochs: 1    # validation at every N-th epoch end (and the last)
      eval_every_n_steps: null  # also validation every N steps (a step record with val_*)
      log_every_n_steps: null   # a step record in metrics.jsonl every N steps (null: none)

With ``steps`` the run ends after that many optimizer steps, mid-epoch if it falls there
(the last step is then a step record with validation).
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from trainctl.spec.config import Config

DEFAULT_EPOCHS = 10


class TrainConfig(Config):
    """How long a run trains and how often it evaluates and logs (module docstring)."""

    epochs: Optional[int] = Field(None, gt=0)
    steps: Optional[int] = Field(None, gt=0)
    eval_batch_size: int = Field(256, gt=0)
    eval_every_n_epochs: int = Field(1, gt=0)
    eval_every_n_steps: Optional[int] = Field(None, gt=0)
    log_every_n_steps: Optional[int] = Field(None, gt=0)

    @model_validator(mode="after")
    def _epochs_or_steps(self) -> "TrainConfig":
        if self.epochs is not None and self.steps is not None:
            raise PydanticCustomError(
                "spec_train", "give epochs or steps, not both (epochs {epochs}, steps {steps})",
                {"key": "epochs", "epochs": self.epochs, "steps": self.steps})
        if self.epochs is None and self.steps is None:
            self.epochs = DEFAULT_EPOCHS
        return self
