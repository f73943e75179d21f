"""Running a list of checks on one spec file: each check is timed, an error in one is
recorded as its failure (never stopping the others), and checks whose inputs a failed
check should have made are skipped. Used by ``trainctl smoke`` and ``trainctl doctor``."""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from trainctl.check.deadline import Deadline, SpecTimeout
from trainctl.check.results import FAIL, SKIP, Check, SpecReport
from trainctl.errors import SpecErrors, TrainctlError

SPEC_SUFFIXES = (".yaml", ".yml")
_NEEDS = {"spec": "a valid spec (validate failed)", "setup": "the model and data (build failed)",
          "trainer": "a trained model (no training check ran)"}


@dataclass
class SmokeOptions:
    """Knobs of the checks (CLI options of ``smoke``/``doctor``).

    ``steps``: training steps on the first batches of the train split; ``overfit_steps``
    (K): the most steps the overfit check may take to bring the loss of one batch of
    ``overfit_batch`` samples to ``overfit_factor`` × its start; ``eval_batches``: batches
    of the evaluation split scored by the eval check; ``timeout``: seconds per spec (None:
    no limit); ``device``: overrides the spec's device; ``grad_samples``: coordinates per
    variable checked against finite differences by doctor's gradcheck; ``overrides``:
    ``--set KEY=VALUE`` texts applied to each spec (as ``load_spec`` takes them).
    """

    steps: int = 20
    overfit_steps: int = 200
    overfit_factor: float = 0.5
    overfit_batch: int = 32
    eval_batches: int = 2
    timeout: float | None = None
    device: str | None = None
    grad_samples: int = 32
    overrides: tuple[str, ...] = ()


@dataclass
class Context:
    """What the checks of one spec share: each check reads what earlier ones made."""

    path: Path
    options: SmokeOptions
    deadline: Deadline
    spec: Any = None      # trainctl.spec.Spec, set by "validate"
    setup: Any = None     # trainctl.train.Setup, set by "build"
    initial: Any = None   # the model's weights at initialisation (cloned), set by "build"
    batch: Any = None     # (x, y) Tensors: the first training batch, set by "build"
    trainer: Any = None   # the Trainer of the last training check
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckDef:
    """A named check: ``run(ctx) -> Check`` (its name, time and ``why`` are filled in);
    ``needs``: Context fields that must be set, else the check is skipped; ``why``: what it
    tests, printed by ``trainctl doctor``."""

    name: str
    run: Callable[[Context], Check]
    why: str
    needs: tuple[str, ...] = ("setup",)


def find_specs(paths: list[Path]) -> list[Path]:
    """Spec files named by ``paths``: files as given, directories expanded to their
    ``*.yaml``/``*.yml`` files (sorted, not recursive). Raises TrainctlError for a path
    that does not exist or a directory without specs."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            specs = sorted(f for f in p.iterdir() if f.suffix in SPEC_SUFFIXES and f.is_file())
            if not specs:
                raise TrainctlError(f"{str(p)!r} holds no spec (*.yaml, *.yml)")
            found.extend(specs)
        elif p.exists():
            found.append(p)
        else:
            raise TrainctlError(f"no such spec file or directory: {str(p)!r}")
    return list(dict.fromkeys(found))


def run_checks(path: Path, checks: list[CheckDef], options: SmokeOptions) -> SpecReport:
    """Run ``checks`` in order on the spec at ``path`` within ``options.timeout``.

    Never raises for a problem of the spec: a TrainctlError, a timeout or any other
    exception becomes the failure of the check that met it (a timeout skips the rest).
    KeyboardInterrupt propagates.
    """
    report = SpecReport(spec=str(path))
    start = time.perf_counter()
    ctx = Context(path=Path(path), options=options, deadline=Deadline(options.timeout))
    with ctx.deadline:
        _run_all(ctx, checks, report)
    report.seconds = time.perf_counter() - start
    return report


def _run_all(ctx: Context, checks: list[CheckDef], report: SpecReport) -> None:
    timed_out = None
    for check in checks:
        if timed_out is not None:
            report.checks.append(Check(check.name, SKIP, f"not run: the spec {timed_out}",
                                       why=check.why))
            continue
        missing = [n for n in check.needs if getattr(ctx, n) is None]
        if missing:
            report.checks.append(Check(check.name, SKIP, f"not run: needs {_NEEDS[missing[0]]}",
                                       why=check.why))
            continue
        t0 = time.perf_counter()
        try:
            with ctx.deadline.interruptible():
                result = check.run(ctx)
        except SpecTimeout as exc:
            timed_out = str(exc)
            result = Check(check.name, FAIL, f"{exc} (--timeout {exc.seconds:g} per spec)")
        except SpecErrors as exc:
            result = Check(check.name, FAIL, "\n".join(str(e) for e in exc.errors))
        except TrainctlError as exc:
            result = Check(check.name, FAIL, str(exc))
        except Exception as exc:  # a bug, or a spec that breaks the library: report it
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            result = Check(check.name, FAIL, f"{type(exc).__name__}: {exc}",
                           values={"traceback": "".join(tb[-6:])})
        report.checks.append(dataclasses.replace(
            result, name=check.name, why=check.why, seconds=time.perf_counter() - t0))
        if ctx.spec is not None and report.name is None:
            report.name = ctx.spec.name
