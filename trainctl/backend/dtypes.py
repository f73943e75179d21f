"""Dtype names used in specs and the API, mapped to torch dtypes.

Floating point defaults to float32 (as TensorFlow); Python ints become int64, bools bool.
"""

from __future__ import annotations

import torch

from trainctl.errors import DTypeError

DEFAULT_FLOAT = torch.float32

_BY_NAME: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in _BY_NAME.items()}


def as_dtype(dtype: "str | torch.dtype | None") -> torch.dtype | None:
    """Return the torch dtype for a name ('float32'), a torch dtype, a numpy dtype or None.

    Raises DTypeError for an unknown name.
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = getattr(dtype, "name", None) or str(dtype)
    try:
        return _BY_NAME[name]
    except KeyError:
        raise DTypeError(f"unknown dtype {dtype!r}; known: {', '.join(_BY_NAME)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32, and so on."""
    return _NAMES.get(dtype, str(dtype).replace("torch.", ""))
