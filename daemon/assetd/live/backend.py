"""Which watch backend follows a root: ``[watch] backend`` = auto | inotify | fanotify.

``auto`` and ``fanotify`` take fanotify for a root when the process holds CAP_SYS_ADMIN (for
fanotify) and CAP_DAC_READ_SEARCH (for ``open_by_handle_at``) and the kernel and the root's
filesystem support the reporting mode (:func:`assetd.live.fanotify_sys.probe`); otherwise the root
is watched with inotify and the reason is logged once (``watch.fanotify_unavailable``).

The running daemon writes which backend each root got to ``<state_dir>/watch.json`` for
``assetd status`` (:func:`write_backends`; read by :func:`assetd.statefiles.read_backends`)."""

from __future__ import annotations

from assetd.live import fanotify_sys
from assetd.log import get_logger
from assetd.statefiles import WATCH_FILE, write_state_json

log = get_logger(__name__)

BACKENDS = ("auto", "inotify", "fanotify")
CAP_DAC_READ_SEARCH = 2
CAP_SYS_ADMIN = 21


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


def write_backends(state_dir: str, pid: int, backends: dict[str, str]) -> None:
    """Record each root's backend for ``assetd status`` (a failure is logged)."""
    try:
        write_state_json(state_dir, WATCH_FILE, {"pid": pid, "backends": backends})
    except OSError as err:
        log.debug("watch.backends_unrecorded", error=repr(err))
