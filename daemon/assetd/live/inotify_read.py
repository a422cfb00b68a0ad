"""The reader thread of a bulk inotify emitter (issue 15): it does nothing but ``os.read`` the
fd in large reads and keep the bytes, so the kernel queue (``fs.inotify.max_queued_events``)
drains at memory speed; the emitter thread parses them (:mod:`assetd.live.inotify_bulk`)."""

from __future__ import annotations

import os
import select
import threading
import time

__all__ = ["GATHER", "READ_SIZE", "STREAM", "STREAM_BYTES", "Rate", "Reader"]

READ_SIZE = 1 << 20
"""Bytes asked for in one read of the inotify fd (about 30,000 records of short names)."""
STREAM = 0.05
STREAM_BYTES = 2048
"""A stream (a burst): at least ``STREAM_BYTES`` of records (about 64) read within ``STREAM``
seconds. Single changes a few milliseconds apart are not one."""
GATHER = 0.0025
"""Seconds a round of a stream gathers records before it is parsed, and ``GATHER / 5`` the
reader rests between reads of a stream: a burst then costs a wake-up of each thread per few
milliseconds, not per record. A change outside a stream is read and parsed at once. Kept
below the debouncer's ``min_quiet_ms`` (5 ms): rounds further apart than the window of a
batch's first arrival would flush a burst in small batches (20 ms gave 390 batches for
100,000 deletions instead of about 50)."""


class Rate:
    """Bytes seen in the current ``STREAM``-long window, and whether that makes a stream."""

    __slots__ = ("_bytes", "_start")

    def __init__(self) -> None:
        self._start = -1.0
        self._bytes = 0

    def streaming(self, now: float) -> bool:
        if now - self._start > STREAM:
            self._start, self._bytes = now, 0
        return self._bytes >= STREAM_BYTES

    def add(self, n: int) -> None:
        self._bytes += n


class Reader(threading.Thread):
    """Reads the inotify fd into ``chunks`` until told to stop; does nothing else."""

    def __init__(self, fd: int, name: str, *, since: float | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self.fd = fd
        self.chunks: list[bytes] = []
        self.read_bytes = 0
        """Bytes read so far: while it moves, the kernel is still queueing events."""
        self.clear_at = time.time() if since is None else since
        """Wall time of the last read that found the kernel queue empty (``since``, the time
        the fd was made, until one did): whatever is read later was queued after it."""
        self._chunks_since = self.clear_at
        self.taken_since = self.clear_at
        """For the data the last :meth:`take` returned: ``clear_at`` before its first read. An
        overflow record in that data lost events of that time or later."""
        self.cond = threading.Condition()
        self.error: OSError | None = None
        self._kill_r, self._kill_w = os.pipe()
        self._stopping = False

    def run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        poller.register(self._kill_r, select.POLLIN)
        rate = Rate()
        try:
            while not self._stopping:
                ready = poller.poll()
                if any(fd == self._kill_r for fd, _ in ready):
                    return
                if rate.streaming(time.monotonic()):
                    time.sleep(GATHER / 5)  # a stream: let more records come per read
                while True:  # drain everything the kernel holds before polling again
                    try:
                        data = os.read(self.fd, READ_SIZE)
                    except BlockingIOError:
                        self.clear_at = time.time()
                        break
                    except InterruptedError:
                        continue
                    rate.add(len(data))
                    self.read_bytes += len(data)
                    with self.cond:
                        if not self.chunks:
                            self._chunks_since = self.clear_at
                        self.chunks.append(data)
                        self.cond.notify()
        except OSError as err:
            self.error = err
        finally:
            with self.cond:
                self._stopping = True
                self.cond.notify_all()

    def take(self, timeout: float) -> bytes:
        """Everything read so far, waiting up to ``timeout`` for something."""
        with self.cond:
            if not self.chunks and not self._stopping and timeout > 0:
                self.cond.wait(timeout)
            data, self.chunks = b"".join(self.chunks), []
            if data:
                self.taken_since = self._chunks_since
        return data

    def stop(self) -> None:
        with self.cond:
            if self._kill_w < 0:
                return
            kill_r, kill_w, self._kill_w = self._kill_r, self._kill_w, -1
            self._stopping = True
        os.write(kill_w, b"!")
        self.join(5.0)
        os.close(kill_r)
        os.close(kill_w)
