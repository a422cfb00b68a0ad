"""``<state_dir>/api.json``: where the running daemon's API listens, for ``assetd status``.

Written by the daemon (atomically) when an address is bound or found unavailable, and at stop;
read by ``assetd status``. Standard library only: the CLI imports this, never the web stack.
"""

from __future__ import annotations

from typing import Any

from assetd.statefiles import read_state_json, write_state_json

STATUS_FILE = "api.json"


def write_api_status(state_dir: str, doc: dict[str, Any]) -> None:
    write_state_json(state_dir, STATUS_FILE, doc)


def read_api_status(state_dir: str) -> dict[str, Any] | None:
    """What the last daemon wrote about its API (None: nothing readable)."""
    return read_state_json(state_dir, STATUS_FILE)


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
