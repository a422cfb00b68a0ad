"""Small JSON files the running daemon leaves in its state directory for ``assetd status``.

``api.json`` (where the API listens) and ``watch.json`` (each root's watch backend). Written
atomically, 0640 whatever the umask; read back only while the daemon that wrote them runs.
Standard library only: read-only commands import this, never the daemon's machinery.
"""

from __future__ import annotations

import json
import os
from typing import Any

FILE_MODE = 0o640
WATCH_FILE = "watch.json"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, FILE_MODE)


def write_state_json(state_dir: str, name: str, doc: dict[str, Any]) -> None:
    """Replace ``<state_dir>/<name>`` atomically (raises OSError)."""
    path = os.path.join(state_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", opener=_private) as f:
        os.fchmod(f.fileno(), FILE_MODE)  # a stale tmp keeps its mode; the umask never widens
        json.dump(doc, f)
    os.replace(tmp, path)


def read_state_json(state_dir: str, name: str) -> dict[str, Any] | None:
    """``<state_dir>/<name>`` as a JSON object (None: missing, unreadable or not an object)."""
    try:
        with open(os.path.join(state_dir, name), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_backends(state_dir: str, pid: int | None) -> dict[str, str]:
    """Root name -> watch backend, as the running daemon ``pid`` wrote it ({} otherwise)."""
    doc = read_state_json(state_dir, WATCH_FILE) if pid is not None else None
    if doc is None or doc.get("pid") != pid or not isinstance(doc.get("backends"), dict):
        return {}
    return {str(k): str(v) for k, v in doc["backends"].items()}
