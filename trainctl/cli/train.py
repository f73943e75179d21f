"""``trainctl train SPEC``: train a spec and write a run directory."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import (DeviceOption, PrecisionOption, SetOption, counted, err, is_tty,
                                  out, user_errors)


class LogFormat(str, Enum):
    text = "text"
    json = "json"


def train(
    spec: Path = typer.Argument(..., metavar="SPEC", help="The YAML spec to train."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where to write the run "
                                           "(default runs/<name>-<timestamp>)."),
    execution: Optional[str] = typer.Option(None, "--execution", help="eager or graph "
                                            "(default: the spec's execution)."),
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the spec's seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override train.epochs."),
    sets: SetOption = [],
    resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN_DIR|auto",
                                         help="Continue a run from its newest valid checkpoint; "
                                         "'auto': the --run-dir, else the latest run of this "
                                         "spec under runs/ (a new run if there is none)."),
    apply_optimizer_changes: bool = typer.Option(
        False, "--apply-optimizer-changes", help="On --resume, use the spec's changed learning "
        "rate / optimizer settings / schedule instead of refusing."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", metavar="CKPT",
                                             help="Start from the weights of a checkpoint or run "
                                             "(weights only; reports each tensor)."),
    init_filter: list[str] = typer.Option([], "--init-filter", metavar="GLOB",
                                          help="With --init-from: load only tensors whose name "
                                          "matches (repeatable), e.g. 'dense/*'."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing on stdout (errors "
                               "and warnings still go to stderr)."),
    log_format: LogFormat = typer.Option(LogFormat.text, "--log-format", help="text: progress "
                                         "bars on a terminal, plain lines elsewhere; json: one "
                                         "JSON object per line (start, each step and epoch "
                                         "record, test, end) for scripts."),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="Data-parallel training "
                                        "on N local processes (the spec's distribute: "
                                        "section; docs/distributed.md)."),
) -> None:
    """Train the model a spec describes; progress on stdout, the run in a run directory."""
    from trainctl.errors import TrainctlError
    from trainctl.spec import flag_overrides, load_spec

    with user_errors():
        s = load_spec(spec, [*sets, *flag_overrides(seed=seed, epochs=epochs, device=device,
                                                   execution=execution, precision=precision)])
        from trainctl.spec.distribute import World  # data-parallel: --nproc, torchrun

        world = World.from_env()
        from trainctl.cli.resuming import run_flags

        flags = run_flags(device=device, precision=precision, execution=execution, seed=seed,
                          epochs=epochs, sets=sets, nproc=nproc,
                          apply_optimizer_changes=apply_optimizer_changes)
        if nproc is not None and nproc > 1:
            if world is not None:
                raise TrainctlError("--nproc starts the processes itself; under torchrun "
                                    "(WORLD_SIZE is set) leave it out")
            from trainctl.cli.launch import launch

            sets = [*sets, *([f"execution={execution}"] if execution else []),
                    *([f"precision={precision}"] if precision else [])]
            raise typer.Exit(launch(nproc, _child_args(
                spec, run_dir, device, seed, epochs, sets, resume, apply_optimizer_changes,
                init_from, init_filter, quiet, log_format.value)))
        if world is not None and world.size > 1:
            from trainctl.cli.train_parallel import train_replica

            from trainctl.cli.launch import launched_nproc

            return train_replica(world, spec, s, run_dir, resume, apply_optimizer_changes,
                                 init_from, init_filter, quiet, log_format.value,
                                 [*flags, *launched_nproc(world)])
        # torch and the data libraries load only once the spec itself is valid, so a
        # typo in it is reported at once
        from trainctl.io import RunDir, default_run_dir
        from trainctl.cli import resuming
        from trainctl.train import Trainer, prepare
        from trainctl.train.checkpointer import check_monitor
        from trainctl.train.signals import SignalExit, handle_signals

        if resume is not None and init_from is not None:
            raise TrainctlError("--resume continues a run; --init-from starts a new one: give one")
        if init_filter and init_from is None:
            raise TrainctlError("--init-filter selects tensors of --init-from, which is missing")
        if apply_optimizer_changes and resume is None:
            raise TrainctlError("--apply-optimizer-changes applies only with --resume")
        setup = prepare(s)
        check_monitor(setup)  # before any run directory is made or opened
        for notice in setup.notices:
            err.print(f"warning: {notice}", markup=False)
        target = resuming.resume_target(resume, run_dir, s) if resume is not None else None
        if target is not None:
            from trainctl.cli.progress import RunOutput

            return _resume(spec, s, setup, target, apply_optimizer_changes,
                           RunOutput(out, log_format.value, quiet, is_tty()), flags)
        if init_from is not None:  # before the run directory exists: an error leaves nothing
            from trainctl.train.init_from import init_from as load_initial

            resuming.report_init(load_initial(setup.model, init_from, init_filter))
        path = run_dir if run_dir is not None else default_run_dir(s.name)
        try:
            rd = RunDir(path).create(setup.resolved_yaml())
        except OSError as exc:  # e.g. a parent is a file, or a folder we may not write
            raise TrainctlError(f"cannot create the run directory {str(path)!r}: "
                                f"{exc.strerror or exc}") from None
        from trainctl.cli.progress import RunOutput
        from trainctl.io.records import finish_run, start_run
        from trainctl.train.runinfo import describe_run

        view = RunOutput(out, log_format.value, quiet, is_tty())
        started = start_run(rd.path, describe_run(setup, spec))
        trainer = Trainer(setup, rd, [view.reporter()])
        try:
            with handle_signals(trainer, s.checkpoint.signals):
                trainer.fit()
        except BaseException as exc:
            rd.close()
            if not any(rd.checkpoints.glob("*")):
                rd.discard()
                err.print(f"removed the unfinished run directory {path}", markup=False)
            else:
                finish_run(rd.path, _status_of(exc), started, error=f"{type(exc).__name__}: {exc}")
            if isinstance(exc, SignalExit):
                raise typer.Exit(resuming.aborted(exc, trainer, spec, path, flags)) from None
            raise
        _finish(trainer, spec, path, view, started, flags)


def _resume(spec_file: Path, s, setup, path: Path, apply_optimizer_changes: bool,
            view, flags: list[str]) -> None:
    """``--resume``: continue the run at ``path`` (see trainctl.train.resume); ``flags``:
    the options to repeat in a resume hint."""
    from trainctl.cli import resuming
    from trainctl.io import RunDir
    from trainctl.io.records import finish_run, start_run
    from trainctl.train import Trainer
    from trainctl.train.resume import apply_resume, plan_resume
    from trainctl.train.runinfo import describe_run
    from trainctl.train.signals import SignalExit, handle_signals

    plan = plan_resume(path, setup, apply_optimizer_changes=apply_optimizer_changes)
    resuming.describe_plan(plan)
    rd = RunDir.open(path)
    trainer = Trainer(setup, rd, [view.reporter()])
    for warning in apply_resume(trainer, plan):
        err.print(f"warning: {warning}", markup=False)
    rd.write_spec(setup.resolved_yaml())
    started = start_run(rd.path, describe_run(setup, spec_file))
    if plan.complete:
        view.line(f"the run is already complete ({counted(trainer.epoch, 'epoch')}): "
                  "nothing to train")
    else:
        try:
            with handle_signals(trainer, s.checkpoint.signals):
                trainer.fit()
        except BaseException as exc:
            rd.close()
            finish_run(rd.path, _status_of(exc), started, error=f"{type(exc).__name__}: {exc}")
            if isinstance(exc, SignalExit):
                raise typer.Exit(resuming.aborted(exc, trainer, spec_file, path, flags)) from None
            raise
    _finish(trainer, spec_file, path, view, started, flags)


def _child_args(spec, run_dir, device, seed, epochs, sets, resume, apply_optimizer_changes,
                init_from, init_filter, quiet, log_format) -> list[str]:
    """The ``trainctl train`` arguments of each process ``--nproc`` starts (its own
    options, ``--nproc`` left out)."""
    args = [str(spec)]
    for flag, value in (("--run-dir", run_dir), ("--device", device), ("--seed", seed),
                        ("--epochs", epochs), ("--resume", resume), ("--init-from", init_from)):
        if value is not None:
            args += [flag, str(value)]
    for value in sets:
        args += ["--set", value]
    for value in init_filter:
        args += ["--init-filter", value]
    if apply_optimizer_changes:
        args.append("--apply-optimizer-changes")
    if quiet:
        args.append("--quiet")
    return args + ["--log-format", log_format]


def _status_of(exc: BaseException) -> str:
    """run.json's status for a run that ``exc`` ended."""
    from trainctl.train.signals import SignalExit

    return "interrupted" if isinstance(exc, (SignalExit, KeyboardInterrupt)) else "failed"


def _finish(trainer, spec_file: Path, path: Path, view, started: float,
            flags: list[str] = ()) -> None:
    """After fit: report a stop by signal (exit 128+N) or by the time budget (exit 3),
    with a resume hint repeating ``flags``, else the test split and the run;
    run.json gets the run's status."""
    from trainctl.cli import resuming
    from trainctl.io.records import finish_run
    from trainctl.train import evaluate

    setup = trainer.setup
    trainer.run_dir.close()
    if (trainer.stop_signal is not None or trainer.stop_reason) and not trainer.finished:
        finish_run(path, "interrupted", started)
        raise typer.Exit(resuming.stopped(trainer, spec_file, path, flags))
    if setup.splits.sizes.get("test", 0):
        result = evaluate(setup, setup.splits.test)
        view.event({"kind": "test", **result},
                   "test  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items()))
    finish_run(path, "completed", started)
    view.event({"kind": "end", "run_dir": str(path), "status": "completed"},
               f"run written to {path}")
