"""The state directory: checked usable before anything is written (exit 78 naming
``daemon.state_dir`` otherwise, with the reason: a read-only mount, an immutable flag, this uid),
and the host id kept in it (generated once from the hostname)."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import secrets
import socket

from assetd.config import Config
from assetd.config_parse import config_error

HOST_ID_FILE = "host-id"


def ensure_state_dir(config: Config) -> str:
    """Create the state directory (mode 0750) if needed; return its path."""
    state_dir = config.state_dir
    if not os.path.isdir(state_dir):
        os.makedirs(state_dir, mode=0o750, exist_ok=True)
        os.chmod(state_dir, 0o750)  # makedirs' mode is masked by the umask
    return state_dir


def usable_state_dir(config: Config, *, create: bool = True) -> str:
    """The state directory, checked usable: a directory this process can write in.

    ``create``: make it if needed and prove it writable by creating and removing a file (what
    ``run`` and ``scan`` do before anything else); else (``check-config``) write nothing and
    judge by the nearest existing directory. A read-only mount, an immutable directory, a path
    below a regular file or a state directory that is a file are each one
    ``ConfigError("daemon.state_dir", ...)`` (exit 78).
    """
    path, key = config.state_dir, "daemon.state_dir"
    if os.path.lexists(path) and not os.path.isdir(path):
        raise config_error(key, f"{path} is not a directory")
    if not os.path.isdir(path) and not create:
        parent = _nearest_existing(path)
        if not os.path.isdir(parent):
            raise config_error(key, f"cannot create {path}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise config_error(key, f"cannot create {path}: {_why_unwritable(parent)}")
        return path
    if not create:
        if not os.access(path, os.W_OK | os.X_OK):
            raise config_error(key, f"cannot write in {path}: {_why_unwritable(path)}")
        return path
    try:
        ensure_state_dir(config)
    except OSError as err:
        raise config_error(key, f"cannot create {path}: {err.strerror or err}") from None
    probe = os.path.join(path, f".probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as err:
        raise config_error(key, f"cannot write in {path}: {err.strerror or err}") from None
    return path


def check_catalog_file(path: str) -> None:
    """For ``check-config``, writing nothing: a SQLite catalog at ``path`` can be opened (a
    regular file, or a file its nearest existing directory lets this process create).
    ``ConfigError("database.url", ...)`` (exit 78) otherwise."""
    key = "database.url"
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise config_error(key, f"{path} is not a regular file")
        return
    parent = _nearest_existing(os.path.dirname(path))
    if not os.path.isdir(parent):
        raise config_error(key, f"cannot create the catalog at {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise config_error(key, f"cannot create the catalog at {path}: {_why_unwritable(parent)}")


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h, for an ``int`` on 64-bit Linux
_FS_IMMUTABLE_FL = 0x10


def _why_unwritable(path: str) -> str:
    """Why ``os.access`` said no: a read-only mount, the immutable flag, or this user."""
    with contextlib.suppress(OSError):
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "Read-only file system"
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            flags = array.array("i", [0])
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        finally:
            os.close(fd)
        if flags[0] & _FS_IMMUTABLE_FL:
            return "the directory is immutable (chattr -i)"
    return (
        f"not writable by uid {os.getuid()} (check it as the daemon's user, e.g. "
        "`sudo -u assetd assetd check-config`)"
    )


def read_host_id(config: Config) -> str:
    """``daemon.host`` or the kept id, writing nothing (for readers); "" when there is none."""
    if config.daemon.host:
        return config.daemon.host
    path = os.path.join(config.state_dir, HOST_ID_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip()
    except OSError:
        return ""


def host_id(config: Config) -> str:
    """This host's id: ``daemon.host``, else ``<state_dir>/host-id``, else a new one, kept there.

    A new id is ``<hostname>-<8 hex>``, written atomically (0640) and never overwritten, so a
    renamed machine keeps its id and two first runs racing agree on one.
    """
    found = read_host_id(config)
    if found:
        return found
    path = os.path.join(config.state_dir, HOST_ID_FILE)
    tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        ensure_state_dir(config)
        with open(tmp, "x", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o640)
            f.write(f"{socket.gethostname()}-{secrets.token_hex(4)}\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # never replaces: of two first runs, the first one wins
        except FileExistsError:
            pass
        except OSError:  # a filesystem without hard links
            os.replace(tmp, path)
    except OSError as err:
        raise config_error("daemon.host", f"cannot keep a host id in {path}: {err}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    found = read_host_id(config)
    if not found:
        raise config_error(
            "daemon.host", f"{path} is empty or unreadable; restore it or set daemon.host"
        )
    return found
