"""``numpy`` imported on first use, so that checking a spec (``trainctl validate``: the
data section's sources, steps and options) does not pay for it (about 0.1 s of a 0.5 s
budget).

Every module of ``trainctl.data`` writes ``from trainctl.data.lazy import numpy as np`` and
uses ``np`` as usual; ``numpy`` is imported at the first attribute looked up (``np.zeros``),
after which the module's names are copied here and later lookups cost what they cost on
numpy itself. The standard library's ``importlib.util.LazyLoader`` does not serve: its
module is loaded by any later ``import numpy`` statement (the import system reads the
module's ``__spec__``), and in Python 3.11 its first load is not thread-safe.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name`` and imports it at the first attribute looked up.
    Concurrent first uses are safe: the import system serialises the import, and copying
    the same names twice does no harm."""

    def __getattr__(self, attr: str) -> Any:   # only for names not copied yet
        module = importlib.import_module(self.__name__)
        self.__dict__.update({k: v for k, v in vars(module).items()
                              if k not in ("__name__", "__spec__", "__loader__")})
        return getattr(module, attr)


numpy: Any = LazyModule("numpy")
