"""Checksums for artifacts: verified before any weights or index are read.

Kept free of Kedro so the serving API can use it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 22


class IntegrityError(RuntimeError):
    """An artifact is missing, truncated or altered."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar(path: str | Path) -> Path:
    """Where the checksum of ``path`` is kept: ``<path>.sha256``."""
    return Path(f"{path}.sha256")


def write_sidecar(path: str | Path) -> str:
    """Record the sha256 of ``path`` beside it; return the digest."""
    digest = sha256_file(path)
    sidecar(path).write_text(f"{digest}  {Path(path).name}\n")
    return digest


def verify_file(path: str | Path, expected: str | None = None) -> str:
    """Check ``path`` against ``expected`` (or its sidecar); return the digest.

    Raises:
        IntegrityError: when the file or its checksum is missing or they disagree.
    """
    path = Path(path)
    if not path.is_file():
        raise IntegrityError(f"{path}: file is missing")
    if expected is None:
        if not sidecar(path).is_file():
            raise IntegrityError(f"{path}: no checksum recorded ({sidecar(path).name} missing)")
        expected = sidecar(path).read_text().split()[0]
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path}: sha256 {actual[:16]}… does not match the recorded {expected[:16]}…; "
            "the file is truncated or altered"
        )
    return actual
