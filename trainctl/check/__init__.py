"""Checks of whole specs: ``smoke`` (fast wiring checks for CI), ``doctor`` (the smoke
checks explained, plus gradient, initial-loss, scale and data diagnostics) and ``bench``
(per-layer timing, optionally against the same model in plain PyTorch).

Rank 6 with ``train/`` (docs/architecture.md): it drives ``train.prepare``, the Trainer and
``io`` checkpoints; ``train`` never imports it.
"""

from trainctl.check.results import FAIL, PASS, SKIP, WARN, Check, SpecReport, junit_xml
from trainctl.check.runner import CheckDef, SmokeOptions, find_specs, run_checks
from trainctl.check.smoke import SMOKE, smoke_spec, smoke_specs

__all__ = ["Check", "SpecReport", "junit_xml", "PASS", "WARN", "FAIL", "SKIP", "CheckDef",
           "SmokeOptions", "find_specs", "run_checks", "SMOKE", "smoke_spec", "smoke_specs"]
