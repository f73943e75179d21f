"""On disk: checkpoints (safetensors + JSON + MANIFEST, never pickle) and run directories."""

from trainctl.io.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from trainctl.io.rundir import RunDir, default_run_dir
from trainctl.io.store import CheckpointStore, step_name
from trainctl.io.verify import check_path

__all__ = ["save_checkpoint", "load_checkpoint", "find_checkpoint", "RunDir", "default_run_dir",
           "CheckpointStore", "step_name", "check_path"]
