"""On disk: checkpoints (safetensors + JSON, never pickle) and run directories."""

from trainctl.io.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from trainctl.io.rundir import RunDir, default_run_dir

__all__ = ["save_checkpoint", "load_checkpoint", "find_checkpoint", "RunDir", "default_run_dir"]
