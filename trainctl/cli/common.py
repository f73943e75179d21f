"""What every command shares: the consoles and user-error handling (one line, exit 2)."""

from __future__ import annotations

import contextlib
import sys

import typer
from rich.console import Console

from trainctl.errors import SpecErrors, TrainctlError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors():
    """Turn user errors into a plain message on stderr and exit code 2 (no traceback).

    Ctrl-C exits with 130. Any other exception is a bug and keeps its traceback.
    """
    try:
        yield
    except SpecErrors as exc:
        for e in exc.errors:
            err.print(f"error: {e}", markup=False)
        raise typer.Exit(2) from None
    except TrainctlError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


def is_tty() -> bool:
    return sys.stdout.isatty()
