"""One atomic writer for every file selfsup writes (config, summary, report, embeddings,
cache): write to a temporary file beside the target, fsync it, then rename it over the
target, so a kill or a full disk leaves the old file or the new one, never half of one.
(Checkpoints are directories and have their own writer in ``selfsup.train.checkpoint``.)"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from selfsup.errors import ConfigError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the whole file to; renamed onto ``path``
    when the block ends without an error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def check_output(path: str | os.PathLike, kind: str = "file", name: str = "out") -> Path:
    """``path`` as an output of ``kind`` (``file`` or ``folder``) that can be written, checked
    before any work: a ``ConfigError`` naming option ``name`` when it is a folder where a
    file is wanted (or the reverse), or when the nearest existing folder above it is missing
    or not writable. Folders above it that do not exist yet are created when it is written."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise ConfigError(f"{name}={str(path)!r}: is a folder; expected a file name")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ConfigError(f"{name}={str(path)!r}: is a file; expected a folder")
    existing = path.parent if kind == "file" else path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={str(path)!r}: cannot write in {existing}")
    return path
