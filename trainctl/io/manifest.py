"""MANIFEST: the SHA-256 of every file of a checkpoint directory.

The file uses the format of GNU ``sha256sum`` (one ``<64 hex digits><two spaces><name>``
line per file, sorted by name), so ``cd CKPT && sha256sum -c MANIFEST`` checks a checkpoint
without trainctl. The manifest is written last: a directory whose manifest is missing or
does not match its files is not a complete checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MANIFEST = "MANIFEST"
_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^/\\\n]+)")
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes as 64 lower-case hex digits. Raises OSError."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def format_manifest(digests: dict[str, str]) -> str:
    """``{file name: sha256 hex}`` as manifest text (sorted by name, one line each)."""
    return "".join(f"{digests[name]}  {name}\n" for name in sorted(digests))


def parse_manifest(text: str) -> dict[str, str]:
    """Manifest text → ``{file name: sha256 hex}``.

    Raises ValueError naming the first malformed line or a file listed twice.
    """
    digests: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"line {number} is not '<sha256>  <file name>': {line[:80]!r}")
        digest, name = match.groups()
        if name in digests:
            raise ValueError(f"line {number}: {name!r} is listed twice")
        digests[name] = digest
    return digests


def check_files(directory: Path, digests: dict[str, str], *, hash_files: bool = True) -> list[str]:
    """Problems (empty if none) of the files of ``directory`` against ``digests``.

    With ``hash_files`` False only presence is checked (cheap: for listings); a truncated or
    bit-flipped file is found only when hashing.
    """
    problems = []
    for name, digest in sorted(digests.items()):
        file = directory / name
        if not file.is_file():
            problems.append(f"{name}: missing")
            continue
        if hash_files:
            try:
                actual = sha256_file(file)
            except OSError as exc:
                problems.append(f"{name}: unreadable ({exc.strerror or exc})")
                continue
            if actual != digest:
                problems.append(f"{name}: SHA-256 mismatch (file changed, truncated or "
                                f"corrupt; {file.stat().st_size} bytes)")
    return problems
