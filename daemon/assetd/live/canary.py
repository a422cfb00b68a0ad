"""The watchdog canary (DESIGN §6): a file touched in a dedicated, non-recursive directory under
the state directory (never the database's own directory). Its events travel observer -> queue ->
pipeline like any other; ``WATCHDOG=1`` is sent only while they keep arriving."""

from __future__ import annotations

import contextlib
import os
import time
from typing import Protocol

from watchdog.events import (
    FileClosedEvent,
    FileModifiedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from assetd import log
from assetd.live.changes import Change, Kind

_log = log.get_logger(__name__)
GRACE = 10.0  # seconds a touch may be in flight before the pipeline counts as stalled


class _Sink(Protocol):
    def put(self, change: Change) -> bool: ...


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: _Sink) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        with contextlib.suppress(Exception):  # never kill watchdog's dispatcher thread
            self.sink.put(Change(Kind.MODIFIED, os.fsdecode(event.src_path)))


class Canary:
    def __init__(self, directory: str, sink: _Sink) -> None:
        self.directory = directory
        self.path = os.path.join(directory, "beat")
        self.sink = sink
        self.touched_at = 0.0
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._count = 0

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        observer = Observer()
        observer.schedule(
            _Handler(self.sink),
            self.directory,
            recursive=False,
            event_filter=[FileModifiedEvent, FileClosedEvent],
        )
        observer.daemon = True
        observer.start()
        self._observer = observer

    def touch(self) -> None:
        self._count += 1
        try:
            with open(self.path, "w", encoding="ascii") as f:
                f.write(f"{self._count}\n")
        except OSError as err:
            _log.warning("canary.failed", path=self.path, error=err.strerror)
            return
        self.touched_at = time.monotonic()

    def alive(self, seen_at: float) -> bool:
        """The pipeline saw the last touch, or it was made less than GRACE seconds ago."""
        if self.touched_at == 0.0:
            return False
        return seen_at >= self.touched_at or time.monotonic() - self.touched_at < GRACE

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5.0)
            self._observer = None
