"""The ``distribute:`` section of a spec: data-parallel training on torch.distributed.

::

    distribute:
      strategy: data_parallel   # the only strategy: one replica of the model per process
      backend: auto             # auto (nccl on CUDA devices, else gloo) | gloo | nccl
      sync_batch_norm: false    # true: batch statistics over the global batch (all ranks)
      bucket_mb: 25             # gradient all-reduce bucket size, MiB (DDP's default)
      timeout_s: 60             # a collective waiting longer than this fails the job

The section is read by ``trainctl train`` when the run has several processes
(``--nproc N``, or a launcher such as ``torchrun`` that sets ``WORLD_SIZE``); a run of one
process ignores it. docs/distributed.md explains the semantics. :class:`World` reads the
launcher's environment (torch-free, so ``--nproc`` starts its processes without torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Mapping

from pydantic import Field

from trainctl.errors import TrainctlError
from trainctl.spec.config import Config


class DistributeConfig(Config):
    """How a run is spread over several processes (docs/distributed.md)."""

    strategy: Literal["data_parallel"] = "data_parallel"
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    sync_batch_norm: bool = False
    bucket_mb: float = Field(25.0, gt=0, le=1024)
    timeout_s: float = Field(60.0, gt=0, le=86400)


class DistributedError(TrainctlError):
    """The process group could not start, or another rank failed or stopped answering
    (exit code 1: not a mistake in the spec or the command line)."""

    exit_code = 1


@dataclass(frozen=True)
class World:
    """This process's place in the job, from the launcher's environment variables."""

    rank: int
    size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "World | None":
        """The job described by ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` (None without
        ``WORLD_SIZE``). Raises DistributedError for inconsistent values."""
        if "WORLD_SIZE" not in environ:
            return None
        try:
            size, rank = int(environ["WORLD_SIZE"]), int(environ.get("RANK", "0"))
            local = int(environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise DistributedError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None
        if size < 1 or not 0 <= rank < size or local < 0:
            raise DistributedError(f"RANK {rank} is not within WORLD_SIZE {size}")
        return cls(rank, size, local)
