"""``<state_dir>/api.json``: where the running daemon's API listens, for ``assetd status``.

Written by the daemon (atomically) when an address is bound or found unavailable, and at stop;
read by ``assetd status``. Standard library only: the CLI imports this, never the web stack.
"""

from __future__ import annotations

import json
import os
from typing import Any

STATUS_FILE = "api.json"
FILE_MODE = 0o640


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def write_api_status(state_dir: str, doc: dict[str, Any]) -> None:
    path = os.path.join(state_dir, STATUS_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", opener=_private) as f:
        os.fchmod(f.fileno(), FILE_MODE)  # a stale tmp keeps its mode; the umask never widens
        json.dump(doc, f)
    os.replace(tmp, path)


def read_api_status(state_dir: str) -> dict[str, Any] | None:
    """What the last daemon wrote about its API (None: nothing readable)."""
    try:
        with open(os.path.join(state_dir, STATUS_FILE), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def describe_api(doc: dict[str, Any] | None, daemon_pid: int | None) -> list[str]:
    """Lines for ``assetd status``: each address and whether it serves. Nothing when the file
    belongs to another (or no) running daemon."""
    if doc is None or doc.get("stopped") or daemon_pid is None or doc.get("pid") != daemon_pid:
        return []
    out = []
    for entry in doc.get("listen", []):
        where = entry.get("path") or entry.get("address")
        error = entry.get("error")
        out.append(f"{where}: unavailable ({error}), retried every 30 s" if error else str(where))
    return out
