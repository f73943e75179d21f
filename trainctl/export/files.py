"""Writing export files atomically: a temporary sibling, fsync, then a rename, so an
error never leaves a partial or half-replaced file at the destination."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trainctl.export.onnx_graph import ExportError


def write_files_atomic(files: dict[Path, bytes]) -> None:
    """Write every ``path: data`` pair: all temporaries first, then the renames (so a
    failed write leaves none of the destinations touched). Raises ExportError naming
    the path when a directory is missing or a file cannot be written."""
    temps: list[tuple[str, Path]] = []
    path = Path(".")
    try:
        for path, data in files.items():
            path = Path(path)
            if not path.parent.is_dir():
                raise ExportError(f"cannot write {str(path)!r}: directory "
                                  f"{str(path.parent)!r} does not exist")
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            temps.append((tmp, path))
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a new file's usual mode
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
        temps.clear()
    except OSError as exc:
        raise ExportError(f"cannot write {str(path)!r}: "
                          f"{exc.strerror or exc}") from None
    finally:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
