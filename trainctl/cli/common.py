"""What every command shares: the consoles and user-error handling (one line, exit 2).

``out`` writes to standard output through :class:`SafeStdout`, so a reader that goes away
(``trainctl train s.yaml | head -1``) silences the output instead of killing the command.
Both consoles follow rich's rules: plain text off a terminal, and no colours with
``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Annotated, Any, Optional

import typer

from trainctl.errors import SpecErrors, TrainctlError

SET_HELP = ("Override a spec value, e.g. --set optimizer.learning_rate=3e-4 or "
            "--set model.layers[0].units=64 (repeatable; the value is YAML, typed by the "
            "schema; an unknown key is an error).")

#: The ``--set KEY=VALUE`` option of every command that reads a SPEC (one definition):
#: ``sets: SetOption = []``; pass the list to ``load_spec``/``load_doc`` as overrides.
SetOption = Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)]
#: ``device: DeviceOption = None`` on every command that runs a model (None: the spec's).
DeviceOption = Annotated[Optional[str], typer.Option(
    "--device", metavar="DEVICE", help="cpu, cuda, cuda:N, mps or auto (CUDA, then MPS, then "
    "CPU); default: the spec's device. One that is not there is an error listing those that are.")]
#: ``precision: PrecisionOption = None``: overrides the spec's ``precision``.
PrecisionOption = Annotated[Optional[str], typer.Option(
    "--precision", metavar="fp32|tf32|bf16|fp16", help="Mixed precision (default: the spec's "
    "precision): matmuls and convolutions in bf16/fp16 (fp16 with loss scaling), the rest in "
    "float32; tf32 lets CUDA use TensorFloat-32.")]

#: ``checkpoint: Path = CHECKPOINT_OPTION`` (required) with ``latest: LatestOption =
#: False``: the model a command loads (eval, predict, export; train.trained.resolve_checkpoint).
CHECKPOINT_OPTION = typer.Option(..., "--checkpoint", help="A checkpoint directory or a run "
                                 "directory (its best checkpoint, else its final one).")
LatestOption = Annotated[bool, typer.Option(
    "--latest", help="With a run directory: its latest checkpoint instead of the best.")]


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless n is 1: ``counted(1, "epoch") == "1 epoch"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def auto_device_words(device: object) -> str:
    """What ``device: auto`` took, in the words every command uses: ``device auto took
    cuda:0`` (train's first line ends with them in parentheses)."""
    return f"device auto took {device}"


def say_auto_device(asked: Optional[str], device: object) -> None:
    """Tell on stderr, in one line, which device ``auto`` took (:func:`auto_device_words`)
    when ``asked`` (the ``--device`` option, else the spec's ``device``) is ``auto``; say
    nothing for a device named outright. On stderr, so ``--json`` output stays one JSON
    object. Imports torch (:func:`trainctl.backend.asks_auto`): call it once a model is placed."""
    from trainctl.backend import asks_auto

    if asks_auto(asked):
        print_line(auto_device_words(device), error=True)


class SafeStdout(io.TextIOBase):
    """``sys.stdout`` (looked up at each call, so test runners' captures work) that turns a
    closed pipe into silence: after the first BrokenPipeError every write is dropped and
    file descriptor 1 points at /dev/null, so the interpreter's last flush is quiet too.
    ``broken`` tells whether that happened."""

    broken = False

    def write(self, text: str) -> int:
        if not SafeStdout.broken:
            try:
                sys.stdout.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not SafeStdout.broken:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self._silence()

    def isatty(self) -> bool:
        return not SafeStdout.broken and sys.stdout.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # rich asks, to choose its characters
        return getattr(sys.stdout, "encoding", None) or "utf-8"

    @staticmethod
    def _silence() -> None:
        SafeStdout.broken = True
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass


class LazyConsole:
    """A rich ``Console(**options)`` made on first use: importing rich costs about 25 ms,
    which ``trainctl validate`` (answering in under 0.5 s) need not pay."""

    def __init__(self, **options: Any):
        self._options = options
        self._console = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out = LazyConsole(file=SafeStdout(), highlight=False, soft_wrap=True)
err = LazyConsole(stderr=True, highlight=False, soft_wrap=True)


def print_line(text: str, error: bool = False) -> None:
    """One plain line on stdout (through :class:`SafeStdout`) or stderr, without rich."""
    if error:
        sys.stderr.write(text + "\n")
    else:
        SafeStdout().write(text + "\n")


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
