"""One daemon per host: advisory lock files (never in a root).

:class:`HostLock` guards the state directory (``<state_dir>/assetd.lock``); a SQLite catalog is
guarded where it is, by :class:`CatalogFileLock` (``<catalog>.lock``), so two daemons with
different state directories never share one catalog. Both are ``flock`` locks: released when
the process exits, even on SIGKILL. (A PostgreSQL catalog: ``catalog/hostlock_pg.py``.)
"""

from __future__ import annotations

import fcntl
import os
import threading

from assetd.errors import ConfigError, HostLocked

LOCK_MODE = 0o640
_HOLDER_WAIT_S = 2.0  # a holder that has just taken the lock writes its pid right after


class _FlockFile:
    lost = False  # a lock file cannot be taken away (a PostgreSQL lock can: hostlock_pg.py)

    def __init__(self, path: str, key: str) -> None:
        self.path = path
        self._key = key
        self._fd: int | None = None

    def _take(self) -> str | None:
        """Lock the file and write this pid in it; None when taken, else the holder's pid."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
        except OSError as err:  # the directory was checked writable: a rare race
            raise ConfigError(
                self._key, f"cannot open {self.path}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            return holder
        os.fchmod(fd, LOCK_MODE)  # an old file keeps its mode; the umask never widens it
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    """The pid written by the lock's holder, waiting briefly for a holder that has just taken
    it (two daemons started in the same instant)."""
    pause = threading.Event()
    for _ in range(int(_HOLDER_WAIT_S / 0.05)):
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if pid:
            return pid
        pause.wait(0.05)
    return "unknown"


class HostLock(_FlockFile):
    """``flock`` on ``<state_dir>/assetd.lock``."""

    def __init__(self, state_dir: str) -> None:
        super().__init__(os.path.join(state_dir, "assetd.lock"), "daemon.state_dir")

    def acquire(self) -> HostLock:
        holder = self._take()
        if holder is not None:
            raise HostLocked(
                f"another assetd (pid {holder}) already runs with state directory "
                f"{os.path.dirname(self.path)}"
            )
        return self


class CatalogFileLock(_FlockFile):
    """``flock`` on ``<catalog>.lock``, beside a SQLite catalog (created 0640 like it)."""

    def __init__(self, db_path: str) -> None:
        super().__init__(db_path + ".lock", "database.url")
        self.db_path = db_path

    def acquire(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.db_path))
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o750, exist_ok=True)
            os.chmod(directory, 0o750)
        holder = self._take()
        if holder is not None:
            raise HostLocked(
                f"another assetd (pid {holder}) already uses the catalog {self.db_path}; "
                "stop it first, or give this one its own database.url"
            )
