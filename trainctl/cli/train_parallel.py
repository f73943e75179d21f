"""``trainctl train`` as one rank of a data-parallel job (``WORLD_SIZE`` > 1 in the
environment: ``--nproc N`` or torchrun started it). trainctl.train.distributed does the
work; this module wires the command: every rank validates the spec, loads its shard and
trains; rank 0 alone writes the run directory, prints and evaluates the test split.
Ctrl-C/SIGTERM end the job without a snapshot (ranks could stop at different steps);
resume it from its last checkpoint with the same ``--nproc``. On Ctrl-C rank 0 alone
prints (``interrupted``, the last checkpoint and the resume hint); every rank exits 130,
also one whose collective failed because a peer stopped first.
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import counted, err, is_tty, out

_interrupted: list[bool] = []  # set by the first SIGINT


def _on_sigint(signum, frame) -> None:
    """The first SIGINT raises KeyboardInterrupt; repeats (the terminal's and the
    launcher's copy) are ignored so they cannot cut the run's clean-up short."""
    if not _interrupted:
        _interrupted.append(True)
        raise KeyboardInterrupt


def train_replica(world, spec_file: Path, s, run_dir: Optional[Path], resume: Optional[str],
                  apply_optimizer_changes: bool, init_from: Optional[Path],
                  init_filter: list[str], quiet: bool, log_format: str,
                  flags: list[str] = ()) -> None:
    """Run this process's rank of the job; raises TrainctlError subclasses (a lost peer:
    DistributedError), typer.Exit(130) on Ctrl-C (``flags``: the options a resume hint
    repeats)."""
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        _replica(world, spec_file, s, run_dir, resume, apply_optimizer_changes, init_from,
                 init_filter, quiet, log_format, flags)
    except KeyboardInterrupt:
        if world.is_main:
            raise  # "interrupted", exit 130 (trainctl.cli.common.user_errors)
        raise typer.Exit(130) from None


def _replica(world, spec_file, s, run_dir, resume, apply_optimizer_changes, init_from,
             init_filter, quiet, log_format, flags) -> None:
    import torch

    from trainctl.backend import resolve_device
    from trainctl.cli import resuming
    from trainctl.cli.progress import RunOutput
    from trainctl.nn.layers.sync_batch_norm import convert_sync_batch_norm
    from trainctl.spec.distribute import DistributeConfig
    from trainctl.train import distributed, prepare
    from trainctl.train.checkpointer import check_monitor

    cfg = s.distribute or DistributeConfig()
    device = resolve_device(s.device)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    backend = distributed.resolve_backend(cfg.backend, device)
    setup = prepare(s, device, shard=(world.size, world.rank))
    check_monitor(setup)
    if cfg.sync_batch_norm:
        convert_sync_batch_norm(setup.model.layers)
    main = world.is_main
    for notice in setup.notices if main else ():
        err.print(f"warning: {notice}", markup=False)
    view = RunOutput(out, log_format, quiet or not main, is_tty())
    target = resuming.resume_target(resume, run_dir, s) if resume is not None else None
    if init_from is not None:
        from trainctl.train.init_from import init_from as load_initial

        report = load_initial(setup.model, init_from, init_filter)
        if main:
            resuming.report_init(report)
    distributed.start(world, backend, cfg.timeout_s)
    signal.signal(signal.SIGTERM, partial(_terminated, world.rank))
    try:
        _run(world, spec_file, s, setup, cfg, backend, target, run_dir, apply_optimizer_changes,
             view, flags)
    except RuntimeError as exc:
        if not distributed.is_collective_failure(exc):
            raise
        if _interrupted:  # a peer stopped on the same Ctrl-C first
            raise typer.Exit(130) from None
        raise distributed.DistributedError(
            f"rank {world.rank}: lost the other processes of the job (one failed, or hung "
            f"past distribute.timeout_s = {cfg.timeout_s:g} s): {distributed.first_line(exc)}"
        ) from None
    finally:
        distributed.stop()


def _terminated(rank: int, signum, frame) -> None:
    from trainctl.spec.distribute import DistributedError

    raise DistributedError(f"rank {rank}: stopped by SIGTERM (the launcher ends the job)")


def _run(world, spec_file, s, setup, cfg, backend, target, run_dir, apply_optimizer_changes, view,
         flags):
    from trainctl.cli.train import _finish, _status_of
    from trainctl.errors import TrainctlError
    from trainctl.io import RunDir, default_run_dir
    from trainctl.io.records import finish_run, start_run
    from trainctl.train.distributed import DataParallelTrainer
    from trainctl.train.runinfo import describe_run

    main = world.is_main
    plan = None
    if target is not None:
        from trainctl.train.resume import apply_resume, plan_resume

        plan = plan_resume(target, setup, apply_optimizer_changes=apply_optimizer_changes)
        path = target
        rd = RunDir.open(path) if main else None
    else:
        path = run_dir if run_dir is not None else default_run_dir(s.name)
        rd = None
        if main:
            try:
                rd = RunDir(path).create(setup.resolved_yaml())
            except OSError as exc:
                raise TrainctlError(f"cannot create the run directory {str(path)!r}: "
                                    f"{exc.strerror or exc}") from None
    trainer = DataParallelTrainer(setup, rd, [view.reporter()] if main else [], cfg.bucket_mb)
    if plan is not None:
        from trainctl.cli import resuming

        if main:
            resuming.describe_plan(plan)
        for warning in apply_resume(trainer, plan):
            if main:
                err.print(f"warning: {warning}", markup=False)
        if not main:
            trainer._progress = None  # rank 0's partial sums count once (docs/distributed.md)
        if main:
            rd.write_spec(setup.resolved_yaml())
    started = start_run(rd.path, describe_run(setup, spec_file)) if main else 0.0
    if main:
        view.line(f"data-parallel: {world.size} processes, backend {backend}, "
                  f"{len(trainer.buckets.buckets)} gradient bucket(s) of <= {cfg.bucket_mb:g} MiB")
    if plan is not None and plan.complete:
        view.line(f"the run is already complete ({counted(trainer.epoch, 'epoch')}): "
                  "nothing to train")
    else:
        try:
            trainer.fit()
        except BaseException as exc:
            from trainctl.train.distributed import is_collective_failure

            stopped = isinstance(exc, KeyboardInterrupt) or (
                bool(_interrupted) and isinstance(exc, RuntimeError)
                and is_collective_failure(exc))
            kept = True
            if main:
                rd.close()
                if target is None and not any(rd.checkpoints.glob("*")):
                    rd.discard()
                    kept = False
                    err.print(f"removed the unfinished run directory {path}", markup=False)
                else:
                    finish_run(rd.path, "interrupted" if stopped else _status_of(exc), started,
                               error=f"{type(exc).__name__}: {exc}")
            if not stopped:
                raise
            if main:
                _interrupt_hint(trainer, spec_file, Path(path), flags, kept)
            raise typer.Exit(130) from None
    if main:
        _finish(trainer, spec_file, Path(path), view, started, flags)


def _interrupt_hint(trainer, spec_file: Path, path: Path, flags, kept: bool) -> None:
    """Rank 0 after Ctrl-C: one ``interrupted`` line, and how to resume when a
    checkpoint is left."""
    from trainctl.cli.resuming import resume_command

    ck = trainer.checkpointer
    entry = ck.store.newest_valid()[0] if ck is not None and kept else None
    if entry is None:
        err.print(f"interrupted after step {trainer.step}; no checkpoint was written",
                  markup=False)
        return
    err.print(f"interrupted after step {trainer.step}; the last checkpoint is {entry.path}",
              markup=False)
    err.print(f"resume with: {resume_command(spec_file, path, flags)}", markup=False)
