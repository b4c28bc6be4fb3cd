"""One daemon per SQLite file: an exclusive ``flock`` on ``<database>.lock``.

The kernel releases the lock when its holder dies, SIGKILL included, so a stale lock never
needs cleaning up. The file itself stays (deleting it would let two processes lock two different
files of the same name); it holds the holder's pid and host, so the refusal can name it. The
descriptor is close-on-exec and the process pool uses forkserver, so no child inherits it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path

from storage.base import StorageError


class DaemonLock:
    def __init__(self, database: str) -> None:
        self.database = database
        self.path = Path(f"{database}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StorageError`` naming the daemon that holds it."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise StorageError(
                f"another feedwatch daemon ({holder}) is using {self.database}; stop it first, "
                "or use PostgreSQL (storage.url: postgresql://...) to run several daemons on one "
                "database"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            text = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        except OSError:
            text = []
        if len(text) >= 2 and text[0].isdigit():
            return f"pid {text[0]} on {text[1]}"
        return "its pid is unknown"

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the last descriptor drops the lock
