"""Which watch backend follows a root: ``[watch] backend`` = auto | inotify | fanotify.

``auto`` and ``fanotify`` take fanotify for a root when the process holds CAP_SYS_ADMIN (for
fanotify) and CAP_DAC_READ_SEARCH (for ``open_by_handle_at``) and the kernel and the root's
filesystem support the reporting mode (:func:`assetd.live.fanotify_sys.probe`); otherwise the root
is watched with inotify and the reason is logged once (``watch.fanotify_unavailable``).

The running daemon writes which backend each root got to ``<state_dir>/watch.json`` for
``assetd status`` (:func:`write_backends`, :func:`read_backends`)."""

from __future__ import annotations

import json
import os
from typing import Any

from assetd.live import fanotify_sys
from assetd.log import get_logger

log = get_logger(__name__)

BACKENDS = ("auto", "inotify", "fanotify")
CAP_DAC_READ_SEARCH = 2
CAP_SYS_ADMIN = 21
STATUS_FILE = "watch.json"
FILE_MODE = 0o640


def effective_caps() -> int:
    """The process's effective capability set (``CapEff`` of /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def fanotify_unavailable(path: str, caps: int | None = None) -> str | None:
    """Why ``path`` cannot be watched with fanotify here (None: it can)."""
    held = effective_caps() if caps is None else caps
    missing = [
        name
        for bit, name in (
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        )
        if not held & (1 << bit)
    ]
    if missing:
        return f"the process lacks {' and '.join(missing)}"
    try:
        fanotify_sys.probe(path)
    except fanotify_sys.FanotifyUnsupported as err:
        return f"the kernel or filesystem does not support it ({err.strerror})"
    except OSError as err:
        return f"probe failed: {err.strerror or err}"
    return None


def choose_backend(configured: str, path: str) -> tuple[str, str | None]:
    """``(backend, why not fanotify)`` for one root; ``why`` is None unless fanotify was
    possible to want (``auto``/``fanotify``) and is not available."""
    if configured == "inotify":
        return "inotify", None
    why = fanotify_unavailable(path)
    return ("fanotify", None) if why is None else ("inotify", why)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def write_backends(state_dir: str, pid: int, backends: dict[str, str]) -> None:
    """Record each root's backend for ``assetd status`` (atomically; a failure is logged)."""
    path = os.path.join(state_dir, STATUS_FILE)
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8", opener=_private) as f:
            os.fchmod(f.fileno(), FILE_MODE)  # whatever the umask (the state directory's rule)
            json.dump({"pid": pid, "backends": backends}, f)
        os.replace(tmp, path)
    except OSError as err:
        log.debug("watch.backends_unrecorded", error=repr(err))


def read_backends(state_dir: str, pid: int | None) -> dict[str, str]:
    """Root name -> backend, as the running daemon ``pid`` wrote it ({} otherwise)."""
    if pid is None:
        return {}
    try:
        with open(os.path.join(state_dir, STATUS_FILE), encoding="utf-8") as f:
            doc: Any = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("pid") != pid:
        return {}
    backends = doc.get("backends")
    if not isinstance(backends, dict):
        return {}
    return {str(k): str(v) for k, v in backends.items()}
