"""httpx clients for the daemon's API (unix socket and TCP) and a Server-Sent Events reader."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def unix_client(path: Path, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(path)),
        base_url="http://assetd",
        headers=headers,
        timeout=30,
    )


def tcp_client(port: int, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SseEvent:
    id: str | None
    name: str
    data: dict[str, Any]


@dataclass
class SseReader:
    """Reads ``GET /api/events`` on a thread; ``events`` grows as they arrive."""

    client: httpx.Client
    last_event_id: str | None = None
    events: list[SseEvent] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    status: int = 0

    def __post_init__(self) -> None:
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        headers = {"Last-Event-ID": self.last_event_id} if self.last_event_id else {}
        try:
            with self.client.stream("GET", "/api/events", headers=headers) as response:
                self.status = response.status_code
                self.connected.set()
                event: dict[str, str] = {}
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if not line:
                        if "event" in event:
                            self.events.append(
                                SseEvent(event.get("id"), event["event"], json.loads(event["data"]))
                            )
                        event = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        event[key] = value
        except httpx.HTTPError:
            pass
        finally:
            self.connected.set()
            self.ended.set()

    def named(self, name: str) -> list[SseEvent]:
        return [e for e in self.events if e.name == name]

    def close(self) -> None:
        """Stop reading; the thread ends at the next line or keep-alive (or when the daemon
        stops), so it is not joined here."""
        self._stop = True
