"""Writing a file atomically: into a hidden temporary sibling, then renamed into place, so
a failure (an error, a full disk, Ctrl-C) never leaves a partial file under its name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from trainctl.errors import OutputError


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file next to ``path``, fsync it and rename
    it to ``path`` (replacing an old file). On any exception the temporary file is
    removed and ``path`` is left as it was; an OSError becomes OutputError naming
    ``path``. Returns ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}; nothing was written") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
