"""httpx clients for the daemon's API (unix socket and TCP) and a Server-Sent Events reader."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
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


class SseReader:
    """Reads ``GET /api/events`` over a raw socket (h11 parses the HTTP) on a thread of its
    own, so :meth:`close` ends it at once; ``events`` grows as they arrive."""

    def __init__(
        self,
        address: str | tuple[str, int],
        token: str | None,
        last_event_id: str | None = None,
        *,
        read: bool = True,
    ) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.connect(address)
        self.sock.settimeout(0.1)
        headers = [("Host", "assetd"), ("Accept", "text/event-stream")]
        if token:
            headers.append(("Authorization", f"Bearer {token}"))
        if last_event_id:
            headers.append(("Last-Event-ID", last_event_id))
        self.conn = h11.Connection(our_role=h11.CLIENT)
        request = h11.Request(method="GET", target="/api/events", headers=headers)
        self.sock.sendall(self.conn.send(request) + self.conn.send(h11.EndOfMessage()))
        self.events: list[SseEvent] = []
        self.status = 0
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._text = ""
        self.thread = threading.Thread(target=self._read, daemon=True) if read else None
        if self.thread is not None:
            self.thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:
                    continue
                self.conn.receive_data(data)
                while True:
                    event = self.conn.next_event()
                    if event is h11.NEED_DATA:
                        break
                    if isinstance(event, h11.Response):
                        self.status = event.status_code
                    elif isinstance(event, h11.Data):
                        self._parse(bytes(event.data).decode())
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        return
                if not data:
                    return
        except (OSError, h11.ProtocolError):
            return
        finally:
            self.ended.set()

    def _parse(self, text: str) -> None:
        self._text += text
        while "\n\n" in self._text:
            block, self._text = self._text.split("\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.split("\n"):
                if line and not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    fields[key] = value
            if "event" in fields:
                data = json.loads(fields["data"])
                self.events.append(SseEvent(fields.get("id"), fields["event"], data))

    def named(self, name: str) -> list[SseEvent]:
        return [e for e in self.events if e.name == name]

    def close(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(5)
        self.sock.close()
