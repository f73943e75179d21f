"""Backend: devices, dtypes and random state over torch kernels.

This is the lowest layer that imports torch. Nothing here records gradients.
"""

from trainctl.backend.device import asks_auto, available_devices, resolve_device
from trainctl.backend.dtypes import DEFAULT_FLOAT, as_dtype, dtype_name
from trainctl.backend.random import generator, manual_seed, rng_state, set_rng_state

__all__ = [
    "asks_auto", "available_devices", "resolve_device", "DEFAULT_FLOAT", "as_dtype", "dtype_name",
    "generator", "manual_seed", "rng_state", "set_rng_state",
]
