"""The parts of ``trainctl train`` that resume, initialise from a checkpoint, and report a
run stopped by a signal (the library does the work; this module chooses and prints)."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path
from typing import Optional, Sequence

from trainctl.cli.common import err, out
from trainctl.errors import TrainctlError


def resume_target(resume: str, run_dir: Optional[Path], spec) -> Optional[Path]:
    """The run directory ``--resume`` names, or None to start a new run.

    ``auto``: the ``--run-dir`` if it holds a run, else the latest run of this spec under
    ``runs/``; when there is none, a new run starts (so one command line serves every
    restart of a preemptible job).
    """
    from trainctl.train.resume import find_run

    if resume != "auto":
        target = Path(resume)
        if run_dir is not None and run_dir.resolve() != target.resolve():
            raise TrainctlError(f"--resume {resume!r} and --run-dir {str(run_dir)!r} name different "
                                f"runs; give one of them")
        if not (target / "spec.yaml").is_file():
            raise TrainctlError(f"--resume {resume!r}: not a run directory (no spec.yaml)")
        return target
    if run_dir is not None:
        if (run_dir / "spec.yaml").is_file():
            return run_dir
        out.print(f"no run in {run_dir} yet: starting a new one", markup=False)
        return None
    target = find_run(spec.name)
    if target is None:
        out.print(f"no earlier run of {spec.name!r} under runs/: starting a new one", markup=False)
    return target


def describe_plan(plan) -> None:
    """Print what a resume is about to do: skipped checkpoints, from where, spec changes."""
    for entry in plan.skipped:
        err.print(f"warning: checkpoint {entry.name} is corrupt ({'; '.join(entry.problems)}); "
                  f"skipped", markup=False)
    if plan.entry is None:
        out.print(f"no checkpoint in {plan.run_dir} yet: training it again from step 0",
                  markup=False)
        return
    data = plan.state.get("data") or {}
    epoch, batch = plan.state.get("epoch", 0), data.get("batch", 0)
    # ``epoch`` counts completed epochs; at an epoch boundary say which one ended, so the
    # numbers agree with "the run is already complete (N epochs)" (epochs are 1-based).
    if batch == 0:
        where = f"after epoch {epoch}" if epoch else "before the first epoch"
    else:
        where = f"epoch {epoch + 1}, batch {batch}"
        if data.get("batches_per_epoch"):
            where += f" of {data['batches_per_epoch']}"
    out.print(f"resuming {plan.run_dir} from {plan.entry.name} (step {plan.state.get('step')}, "
              f"{where})", markup=False)
    safe = [c for c in plan.changes if c.kind == "safe"]
    applied = [c for c in plan.changes if c.kind == "needs_flag"]
    if safe:
        out.print("spec changes since the checkpoint (safe): " + "; ".join(map(str, safe)),
                  markup=False)
    if applied:
        out.print("applying optimizer changes (--apply-optimizer-changes): " +
                  "; ".join(map(str, applied)), markup=False)


def report_init(report) -> None:
    from trainctl.train.init_from import FILTERED, LOADED, MISSING, SHAPE, UNUSED

    counts = ", ".join(f"{report.count(s)} {s}" for s in (LOADED, MISSING, SHAPE, UNUSED, FILTERED)
                       if report.count(s))
    out.print(f"initialised from {report.source}: {counts}", markup=False)
    for row in report.rows:
        out.print(f"  {row}", markup=False)


def run_flags(*, device=None, precision=None, execution=None, seed=None, epochs=None,
              sets: Sequence[str] = (), apply_optimizer_changes: bool = False,
              nproc: Optional[int] = None) -> list[str]:
    """The ``trainctl train`` options that shaped a run, as argv tokens: a resume must
    repeat them (the spec they resolve to is compared with the checkpoint's)."""
    flags: list[str] = []
    for flag, value in (("--device", device), ("--precision", precision),
                        ("--execution", execution), ("--seed", seed), ("--epochs", epochs)):
        if value is not None:
            flags += [flag, str(getattr(value, "value", value))]
    for value in sets:
        flags += ["--set", value]
    if apply_optimizer_changes:
        flags.append("--apply-optimizer-changes")
    if nproc is not None and nproc > 1:
        flags += ["--nproc", str(nproc)]
    return flags


def resume_command(spec_path: Path, run_path: Path, flags: Sequence[str] = ()) -> str:
    """``trainctl train SPEC --resume RUN FLAGS...``, each word quoted for a POSIX shell."""
    words = ["trainctl", "train", str(spec_path), "--resume", str(run_path), *flags]
    return " ".join(shlex.quote(w) for w in words)


INCOMPLETE = 3  # the exit code of a run a callback (time_budget) stopped before its end


def stopped(trainer, spec_path: Path, run_path: Path, flags: Sequence[str] = ()) -> int:
    """Print how a run stopped by a signal or by a callback (the time budget) can be
    resumed (``flags``: the run's options, see :func:`run_flags`); returns the exit code:
    128 + the signal number, or 3 (:data:`INCOMPLETE`)."""
    from trainctl.train.signals import exit_code

    name = (f"by {signal.Signals(trainer.stop_signal).name}" if trainer.stop_signal is not None
            else f"({trainer.stop_reason})")
    ck = trainer.checkpointer
    entry = ck.store.newest_valid()[0] if ck is not None else None
    if entry is not None and entry.step == trainer.step:
        note = f"checkpoint {entry.path}"
    else:
        note = "no checkpoint written for this stop" + (f"; the last one is {entry.path}"
                                                         if entry is not None else "")
    err.print(f"stopped {name} after step {trainer.step}; {note}", markup=False)
    err.print(f"resume with: {resume_command(spec_path, run_path, flags)}", markup=False)
    return exit_code(trainer.stop_signal) if trainer.stop_signal is not None else INCOMPLETE


def aborted(exc, trainer, spec_path: Path, run_path: Path, flags: Sequence[str] = ()) -> int:
    """Print what a second stopping signal left; returns the exit code."""
    ck = trainer.checkpointer
    entry = ck.store.newest_valid()[0] if ck is not None else None
    last = f"the last checkpoint is {entry.path}" if entry else "no checkpoint was written"
    err.print(f"second {signal.Signals(exc.signum).name}: exited at once, without a checkpoint "
              f"of the step in progress; {last}", markup=False)
    if entry is not None:
        err.print(f"resume with: {resume_command(spec_path, run_path, flags)}", markup=False)
    return exc.exit_code
