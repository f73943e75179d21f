"""CSV files (RFC 4180, through Python's ``csv`` module) into typed columns.

A file starts with a header row naming its columns. Each column's type is inferred from
its first non-missing value: a number (``int`` when every value is an integer literal,
else ``float``) or text. A later value that breaks a numeric column's type, or a row
with the wrong number of fields, is a malformed row: DataError ``FILE:LINE: ...``.
"""

from __future__ import annotations

import csv
import difflib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from trainctl.data.lazy import numpy as np

from trainctl.errors import DataError

#: cell values that count as missing (compared after stripping spaces)
MISSING_VALUES = ("", "NA", "N/A", "NaN", "nan", "null", "?")


@contextmanager
def csv_errors(path: Path) -> Iterator[None]:
    """Turn what reading the CSV file ``path`` can raise (bad UTF-8, a csv.Error, an
    OSError) into one DataError naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


@dataclass
class Column:
    """One column: ``values`` float64/int64 [N] for numbers or str [N] for text, and
    ``missing`` bool [N]; ``lines`` [N] gives each row's line in ``files``."""

    name: str
    kind: str                        # "int", "float" or "text"
    values: np.ndarray
    missing: np.ndarray
    lines: np.ndarray = field(repr=False)
    files: list[Path] = field(repr=False)
    file_of_row: np.ndarray = field(repr=False)

    def where(self, row: int) -> str:
        """``FILE:LINE`` of row ``row``."""
        return f"{self.files[self.file_of_row[row]]}:{self.lines[row]}"


def read_csv(paths: list[Path], delimiter: str = ",",
             missing_values: tuple[str, ...] = MISSING_VALUES) -> dict[str, Column]:
    """The columns of one or more CSV files with the same header, rows in file order.

    Raises DataError for an empty file, a repeated column name, headers that differ
    between files, a row with another number of fields than the header, or a value
    that is not a number in a numeric column (each naming file and line).
    """
    header: list[str] | None = None
    cells: list[list[str]] = []
    lines: list[int] = []
    file_of_row: list[int] = []
    for f, path in enumerate(paths):
        with csv_errors(path), open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            first = next(reader, None)
            if first is None:
                raise DataError(f"{path}: empty file (expected a header row)")
            first = [name.strip() for name in first]
            if header is None:
                header = _check_header(path, first)
            elif first != header:
                raise DataError(f"{path}:1: header {first} differs from {paths[0].name}'s {header}")
            for row in reader:
                if not row:
                    continue             # blank line
                if len(row) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: expected {len(header)} fields "
                                    f"({', '.join(header)}), got {len(row)}")
                cells.append(row)
                lines.append(reader.line_num)
                file_of_row.append(f)
    assert header is not None
    line_array = np.array(lines, dtype=np.int64)
    file_array = np.array(file_of_row, dtype=np.int64)
    columns = {}
    for j, name in enumerate(header):
        raw = [row[j].strip() for row in cells]
        columns[name] = _typed(name, raw, missing_values, line_array, file_array, paths)
    return columns


def _check_header(path: Path, header: list[str]) -> list[str]:
    seen = set()
    for name in header:
        if not name:
            raise DataError(f"{path}:1: the header has an empty column name")
        if name in seen:
            raise DataError(f"{path}:1: column {name!r} appears twice in the header")
        seen.add(name)
    return header


def _typed(name: str, raw: list[str], missing_values: tuple[str, ...], lines: np.ndarray,
           files: np.ndarray, paths: list[Path]) -> Column:
    missing = np.array([v in missing_values for v in raw], dtype=bool)
    present = [v for v, m in zip(raw, missing) if not m]
    kind = "text"
    if present and _number(present[0]) is not None:
        kind = "int" if all(_is_int(v) for v in present) else "float"
    if kind == "text":
        values = np.array(raw, dtype=str)
        return Column(name, kind, values, missing, lines, paths, files)
    out = np.zeros(len(raw), dtype=np.float64)
    for i, (value, gap) in enumerate(zip(raw, missing)):
        if gap:
            out[i] = np.nan
            continue
        number = _number(value)
        if number is None:
            raise DataError(f"{paths[files[i]]}:{lines[i]}: column {name!r}: {value!r} is not a "
                            f"number (the column's first value, {present[0]!r}, is)")
        out[i] = number
    if kind == "int" and not missing.any():
        return Column(name, kind, out.astype(np.int64), missing, lines, paths, files)
    return Column(name, "float" if kind == "float" else "int", out, missing, lines, paths, files)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _is_int(text: str) -> bool:
    try:
        int(text)
        return True
    except ValueError:
        return False


def pick(columns: dict[str, Column], names: list[str], what: str) -> list[Column]:
    """The columns called ``names``; DataError with a "did you mean" for an unknown one."""
    out = []
    for name in names:
        if name not in columns:
            close = difflib.get_close_matches(name, list(columns), n=2)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else \
                f"; the columns are {', '.join(columns)}"
            raise DataError(f"{what}: no column {name!r}{hint}")
        out.append(columns[name])
    return out
