"""User-facing errors.

Every error a user can cause by their input (spec, data, command line) is a
:class:`TrainctlError`. The CLI prints ``str(error)`` on one line and exits with
code 2, without a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


def fmt_shape(shape) -> str:
    """``[3,4]`` for a shape, as every error message writes it."""
    return "[" + ",".join(str(int(d)) for d in shape) + "]"


class TrainctlError(Exception):
    """Base class of errors caused by user input; the CLI exits with code 2."""

    exit_code = 2


class ShapeError(TrainctlError, ValueError):
    """An op or layer got operands whose shapes it cannot combine.

    The message names the op and the shapes, e.g. ``matmul: cannot multiply [3,4] by [5,6]``.
    """


class DTypeError(TrainctlError, TypeError):
    """An op got an operand of a dtype it does not accept."""


class UnknownNameError(TrainctlError, KeyError):
    """A registry lookup failed. ``suggestions`` holds the closest registered names."""

    def __init__(self, kind: str, name: object, suggestions: list[str], known: list[str]):
        self.kind = kind
        self.name = name
        self.suggestions = suggestions
        self.known = known
        if suggestions:
            hint = "did you mean " + " or ".join(repr(s) for s in suggestions) + "?"
        else:
            hint = "known: " + ", ".join(known)
        super().__init__(f"unknown {kind} {name!r}; {hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class SpecError(TrainctlError):
    """One error in a spec file, located by file, line, column and key path.

    ``str()`` gives ``FILE:LINE:COL: KEY: MESSAGE``; line and column are 1-based and are
    omitted when unknown (e.g. a required key that is missing from the file).
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None, key: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.key = key
        super().__init__(self.format())

    def format(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"

    def __str__(self) -> str:
        return self.format()


class SpecErrors(TrainctlError):
    """Several spec errors reported together (all errors of a file, not only the first)."""

    def __init__(self, errors: list[SpecError]):
        self.errors = list(errors)
        super().__init__("\n".join(e.format() for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(e.format() for e in self.errors)


class DataError(TrainctlError):
    """Bad data: names the file and record where it can."""


class CheckpointError(TrainctlError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class OutputError(TrainctlError):
    """An output file (predictions, a plot) cannot be written; nothing is left behind."""


class DeviceError(TrainctlError):
    """A device was asked for that is not available; the message lists what is."""
