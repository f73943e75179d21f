"""``trainctl train SPEC``: train a spec and write a run directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from trainctl.cli.common import err, is_tty, out, user_errors


def train(
    spec: Path = typer.Argument(..., help="The YAML spec to train."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where to write the run "
                                           "(default runs/<name>-<timestamp>)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto "
                                         "(default: the spec's device)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the spec's seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override train.epochs."),
) -> None:
    """Train the model a spec describes; progress on stdout, the run in a run directory."""
    from trainctl.errors import TrainctlError
    from trainctl.spec import load_spec

    with user_errors():
        s = load_spec(spec).with_overrides(seed=seed, epochs=epochs, device=device)
        # torch and the data libraries load only once the spec itself is valid, so a
        # typo in it is reported at once
        from trainctl.io import RunDir, default_run_dir
        from trainctl.train import Trainer, evaluate, prepare

        setup = prepare(s)
        path = run_dir if run_dir is not None else default_run_dir(s.name)
        if path.exists() and not path.is_dir():
            raise TrainctlError(f"--run-dir {str(path)!r} is a file, not a directory")
        created = not path.exists()
        try:
            rd = RunDir(path).create(setup.resolved_yaml())
        except OSError as exc:  # e.g. a parent is a file, or a folder we may not write
            raise TrainctlError(f"cannot create the run directory {str(path)!r}: "
                                f"{exc.strerror or exc}") from None
        from trainctl.cli.progress import PlainReporter, RichReporter

        reporter = RichReporter(out) if is_tty() else PlainReporter(out)
        try:
            Trainer(setup, rd, [reporter]).fit()
        except BaseException:
            if created and not any(rd.checkpoints.glob("*")):
                shutil.rmtree(path, ignore_errors=True)
                err.print(f"removed the unfinished run directory {path}", markup=False)
            raise
        if setup.splits.sizes.get("test", 0):
            result = evaluate(setup, setup.splits.test)
            out.print("test  " + "  ".join(f"{k} {v:.4f}" for k, v in result.items()), markup=False)
        out.print(f"run written to {path}", markup=False)
