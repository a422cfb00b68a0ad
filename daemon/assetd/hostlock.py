"""One daemon per host: an advisory lock file in the state directory (never in a root)."""

from __future__ import annotations

import fcntl
import os

from assetd.errors import ConfigError, HostLocked


class HostLock:
    """``flock`` on ``<state_dir>/assetd.lock``; released when the process exits, even on kill."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "assetd.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        except OSError as err:  # the state directory was checked writable: a rare race
            raise ConfigError(
                "daemon.state_dir", f"cannot open {self.path}: {err.strerror or err}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise HostLocked(
                f"another assetd (pid {holder}) already runs with state directory "
                f"{os.path.dirname(self.path)}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
