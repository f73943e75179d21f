"""The ``checkpoint:`` section of a spec: when to save, what to keep, what signals do.

::

    checkpoint:
      every_n_steps: 500        # also save every 500 optimizer steps (default: off)
      every_epoch: true         # save at the end of every epoch (default)
      keep_last: 3              # step checkpoints kept (null: all); best/latest never pruned
      monitor: val_loss         # keep the best checkpoint by this metrics.jsonl key
      mode: auto                # min | max | auto (max for accuracy-like keys, else min)
      signals: {sigint: snapshot_and_stop, sigterm: snapshot_and_stop,
                sighup: snapshot_and_stop, sigusr1: snapshot}

A signal action (as Caffe's ``-sigint_effect``) is one of ``snapshot`` (write a checkpoint
after the current step, keep training), ``stop`` (stop after the current step, no
checkpoint), ``snapshot_and_stop``, or ``none`` (ignore the signal).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from trainctl.spec.config import Config

SignalAction = Literal["snapshot", "stop", "snapshot_and_stop", "none"]


class SignalsConfig(Config):
    """What each signal does during training (see the module docstring)."""

    sigint: SignalAction = "snapshot_and_stop"
    sigterm: SignalAction = "snapshot_and_stop"
    sighup: SignalAction = "snapshot_and_stop"
    sigusr1: SignalAction = "snapshot"


class CheckpointConfig(Config):
    """When checkpoints are written and which are kept (docs/checkpoints.md)."""

    every_n_steps: Optional[int] = Field(None, gt=0)
    every_epoch: bool = True
    keep_last: Optional[int] = Field(3, gt=0)
    monitor: Optional[str] = None
    mode: Literal["min", "max", "auto"] = "auto"
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
