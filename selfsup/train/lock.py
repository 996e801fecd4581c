"""One process per run directory: ``RunLock(out)`` holds an exclusive ``flock`` on
``out/.lock`` for the life of a run, with the holder's PID written in it.

The kernel drops a ``flock`` when its process dies, however it dies, so the lock file a
killed run leaves behind is stale by construction: the next run takes it without asking.
A second process on a directory that is in use is refused, naming the holder. Under
torchrun the ranks of one job share the lock: rank 0 holds it for all of them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from selfsup.errors import ConfigError

LOCK = ".lock"


class RunLock:
    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOCK
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"out={str(self.path.parent)!r}: in use by another selfsup process (PID {holder}); "
                              f"wait for it to end or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
