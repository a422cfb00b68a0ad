"""inotify limits: the probe for a full watch table and the messages with the exact sysctl."""

from __future__ import annotations

import ctypes
import errno
import os
import resource

from assetd.errors import WatchError

WATCHES_KEY = "fs.inotify.max_user_watches"
INSTANCES_KEY = "fs.inotify.max_user_instances"
_LIMIT_FILES = {
    WATCHES_KEY: ("/proc/sys/fs/inotify/max_user_watches", "/proc/sys/user/max_inotify_watches"),
    INSTANCES_KEY: (
        "/proc/sys/fs/inotify/max_user_instances",
        "/proc/sys/user/max_inotify_instances",
    ),
}


class WatchLimitError(WatchError):
    """An inotify limit (``fs.inotify.max_user_watches``, or ``max_user_instances`` when
    ``key`` says so) is too low for this root; the message carries the ``sysctl`` line."""

    def __init__(
        self,
        root_name: str,
        needed_dirs: int,
        current_limit: int,
        *,
        key: str = WATCHES_KEY,
        root_path: str = "",
    ) -> None:
        self.needed_dirs = needed_dirs
        self.current_limit = current_limit
        self.key = key
        if key == INSTANCES_KEY:
            floor = 1024
            what = "the inotify instance limit is reached (assetd uses one per watched root); "
        else:
            floor = 524288
            under = f" under {root_path}" if root_path else ""
            what = f"the inotify watch limit is reached: {needed_dirs} directories{under} need "
            what += "one watch each; "
        suggested = max(needed_dirs * 2, floor)
        if suggested <= current_limit:
            suggested = current_limit * 2
        self.suggested = suggested
        super().__init__(
            root_name,
            f"{what}{key} is {current_limit}, shared by every process of this user; raise it "
            f"with: sysctl {key}={suggested} (and keep it in /etc/sysctl.d/), "
            "or set polling = true for this root",
        )


def read_inotify_limit(key: str) -> int:
    """The effective value of ``key`` (the lower of the sysctl and this user namespace's own
    ``/proc/sys/user`` value); 0 when unreadable."""
    values = []
    for path in _LIMIT_FILES[key]:
        try:
            with open(path, encoding="ascii") as f:
                values.append(int(f.read().strip()))
        except (OSError, ValueError):
            continue
    return min(values) if values else 0


def count_dirs(path: str, *, follow_symlinks: bool = False) -> int:
    """Directories watchdog would watch under ``path``, itself included (unreadable ones count
    once, their content not at all)."""
    count, stack = 0, [path]
    while stack:
        current = stack.pop()
        count += 1
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=follow_symlinks) and (
                            follow_symlinks or not entry.is_symlink()
                        ):
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return count


_IN_CLOEXEC = 0o2000000
_IN_NONBLOCK = 0o4000
_IN_DELETE_SELF = 0x400
_libc: ctypes.CDLL | None = None


def watch_limit_reached(path: str) -> bool:
    """True when one more inotify watch cannot be added (ENOSPC) for this user: watchdog then
    leaves new or remaining subdirectories unwatched without a word. Probes with a throw-away
    inotify instance watching ``path``; False when it cannot tell (no instance left, no path)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = _libc.inotify_init1(_IN_CLOEXEC | _IN_NONBLOCK)
    if fd < 0:
        return False
    try:
        wd = _libc.inotify_add_watch(
            fd, ctypes.c_char_p(os.fsencode(path)), ctypes.c_uint32(_IN_DELETE_SELF)
        )
        return wd < 0 and ctypes.get_errno() == errno.ENOSPC
    finally:
        os.close(fd)


def watch_error(
    root_name: str, root_path: str, err: OSError, *, follow_symlinks: bool = False
) -> WatchError:
    """The one-line error for a failed start of a root's watch: the watch or instance limit
    (with the ``sysctl`` line), the open-file limit, or the OS reason."""
    if err.errno == errno.ENOSPC:
        needed = count_dirs(root_path, follow_symlinks=follow_symlinks)
        limit = read_inotify_limit(WATCHES_KEY)
        return WatchLimitError(root_name, needed, limit, root_path=root_path)
    if err.errno == errno.EMFILE:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            open_fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            open_fds = 0
        if soft != resource.RLIM_INFINITY and open_fds >= soft - 2:
            return WatchError(
                root_name,
                f"the open-file limit ({soft}) is reached; raise LimitNOFILE= in the unit",
            )
        limit = read_inotify_limit(INSTANCES_KEY)
        return WatchLimitError(root_name, 0, limit, key=INSTANCES_KEY)
    return WatchError(root_name, f"cannot watch {root_path}: {err.strerror or err}")
