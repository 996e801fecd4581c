"""One job per run directory: ``RunLock(out)`` holds an exclusive ``flock`` on ``out/.lock``
for the life of a run, with the holder's PID (and, under torchrun, its job id) written in it.

The kernel drops a ``flock`` when its process dies, however it dies, so the lock file a
killed run leaves behind is stale by construction: the next run takes it without asking.
A second process on a directory that is in use is refused, naming the holder.

Under torchrun the ranks of one job share the lock: rank 0 ``acquire``s it for all of them,
and the other ranks on its machine ``join`` it: they wait until it is held by a process of
their own job (``TORCHELASTIC_RUN_ID``), and are refused, naming the holder, when a process
of another job (or a single process) holds it. So every rank of a second job on rank 0's
machine stops before reading any data, not only its rank 0. (``train.run.prepare`` joins
only when ``--out`` names the directory: each rank names a default directory by itself.)
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from selfsup.errors import ConfigError

LOCK = ".lock"
SETTLE = 1.0  # seconds a foreign holder must persist before a joining rank is refused (see ``join``)


def job_id() -> str | None:
    """The torchrun job this process belongs to (None outside torchrun)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") or None


class RunLock:
    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory) / LOCK
        self._fd: int | None = None

    def acquire(self, wait: float = 0.5) -> "RunLock":
        """Take the lock, or raise ``ConfigError`` naming its holder. A rank joining this
        job probes with a shared lock for an instant; ``wait`` seconds of retries outlast it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                os.close(fd)
                raise self._in_use() from None
        os.ftruncate(fd, 0)
        job = job_id()
        os.pwrite(fd, f"{os.getpid()}{' ' + job if job else ''}\n".encode(), 0)
        self._fd = fd
        return self

    def join(self, timeout: float = 300.0) -> None:
        """For a rank other than 0 of a torchrun job: return once this job's rank 0 holds the
        lock; raise ``ConfigError`` naming the holder when another job or process holds it
        (for ``SETTLE`` seconds: rank 0 writes its job id just after it takes the lock), or
        when rank 0 has not taken it after ``timeout`` seconds."""
        job = job_id()
        deadline = time.monotonic() + timeout
        foreign_since = None
        while time.monotonic() < deadline:
            if self._locked():
                pid, holder_job = self.holder()
                if holder_job is not None and holder_job == job:
                    return
                foreign_since = foreign_since or time.monotonic()
                if time.monotonic() - foreign_since >= SETTLE:
                    raise self._in_use()
            else:
                foreign_since = None
            time.sleep(0.05)
        raise ConfigError(f"out={str(self.path.parent)!r}: rank 0 of this torchrun job did not take the run "
                          f"directory's lock within {timeout:.0f} s")

    def holder(self) -> tuple[str, str | None]:
        """(PID, torchrun job id or None) written by the last holder ('unknown' when none)."""
        try:
            words = self.path.read_text(errors="replace").split()
        except OSError:
            words = []
        return (words[0] if words else "unknown"), (words[1] if len(words) > 1 else None)

    def _locked(self) -> bool:
        """Whether some process holds the lock now (probed with a shared lock, released at once)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the probe's shared lock

    def _in_use(self) -> ConfigError:
        pid, job = self.holder()
        return ConfigError(f"out={str(self.path.parent)!r}: in use by another selfsup process (PID {pid}"
                           f"{f', torchrun job {job}' if job else ''}); wait for it to end or choose another --out")

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
