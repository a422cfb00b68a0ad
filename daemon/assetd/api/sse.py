"""The ``text/event-stream`` response of ``GET /api/events``.

A raw ASGI response (no buffering middleware in between) so the server's own flow control is
what a slow client meets: a send that does not complete within ``SEND_TIMEOUT``, or a client
that falls ``CLIENT_QUEUE`` events behind, ends that client's stream (``api.client_dropped``);
nothing is buffered without bound. A comment line every ``KEEPALIVE`` seconds finds dead
connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from assetd import log
from assetd.api.events import Event, EventRing, Subscriber

_log = log.get_logger(__name__)

SEND_TIMEOUT = 10.0
KEEPALIVE = 15.0
RETRY_MS = 2000  # the reconnect delay a client is told to use


def encode(event: Event) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.name}\ndata: {data}\n\n".encode()


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, ring: EventRing, last_event_id: str | None) -> None:
        self.ring = ring
        self.last_event_id = last_event_id
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ring = self.ring
        sub = ring.subscribe()  # before reading the history: nothing falls in between
        history = ring.since(self.last_event_id)
        first = [ring.reset_event()] if history is None else history
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            head = f"retry: {RETRY_MS}\n\n".encode() + b"".join(encode(e) for e in first)
            if await self._send(send, head, sub) and await self._stream(send, sub, gone):
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    await asyncio.wait_for(
                        send({"type": "http.response.body", "body": b"", "more_body": False}),
                        SEND_TIMEOUT,
                    )
        finally:
            ring.unsubscribe(sub)
            watcher.cancel()

    async def _stream(self, send: Send, sub: Subscriber, gone: asyncio.Event) -> bool:
        """Forward events until the client goes (False) or the ring closes the stream (True)."""
        while not gone.is_set():
            if sub.dropped.is_set():
                if self.ring.closing:
                    return True
                self._dropped("fell behind")
                return False
            sub.ready.clear()
            events: list[Event] = []
            while not sub.queue.empty() and len(events) < 100:
                events.append(sub.queue.get_nowait())
            if events:
                chunk = b"".join(encode(e) for e in events)
            else:
                await _first_of(sub.ready, sub.dropped, gone, timeout=KEEPALIVE)
                if not sub.queue.empty() or sub.dropped.is_set() or gone.is_set():
                    continue
                chunk = b": keep-alive\n\n"
            if not await self._send(send, chunk, sub):
                return False
        return False

    async def _send(self, send: Send, body: bytes, sub: Subscriber) -> bool:
        message: Message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            await asyncio.wait_for(send(message), SEND_TIMEOUT)
        except TimeoutError:
            self._dropped(f"a write did not complete in {SEND_TIMEOUT:g} s")
            return False
        except OSError:  # the client went away
            return False
        return True

    def _dropped(self, why: str) -> None:
        if "write" in why:  # a queue overflow was counted by the ring
            self.ring.dropped_clients += 1
        _log.warning("api.client_dropped", reason=why, action="the client reconnects and resumes")


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


async def _first_of(*events: asyncio.Event, timeout: float) -> None:
    """Wait until one of ``events`` is set, at most ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
