"""The main thread's plumbing for ``assetd run``: signals, wake-ups, start-up and stop timing.

- :class:`Waker` is a self-pipe the main loop sleeps on. Other threads wake it with
  :meth:`Waker.wake`; signals wake it through :func:`signal.set_wakeup_fd`, which writes a byte
  from C before any Python code runs.
- :class:`SignalFlags` is what the signal handlers set: plain attributes, no lock. A Python
  signal handler runs on the main thread between two bytecodes, possibly while the main thread
  holds a lock (``Event.set()`` from a handler can deadlock with the main thread inside
  ``Event.wait()``), so the handler only assigns a flag and the main loop does the work.
- :class:`StartKeeper` sends ``EXTEND_TIMEOUT_USEC`` while the start-up takes long (watching a
  large tree), so systemd does not kill a healthy start; it gives up after ``limit`` seconds, so
  a start that truly hangs still times out.
- :class:`StopBudget` shares one deadline between the stop's waits, so they and the last write
  of the ``daemons`` row add up to at most :data:`STOP_BUDGET`, which fits the units'
  ``TimeoutStopSec=30`` with 10 s to spare; a wait that runs out of time logs
  ``daemon.stop_timeout`` naming what it was waiting for.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Protocol

from assetd import log
from assetd.timing import Clock

__all__ = ["STOP_BUDGET", "SignalFlags", "StartKeeper", "StopBudget", "Waker"]

_log = log.get_logger(__name__)

STOP_BUDGET = 20.0
"""Seconds a whole stop may take (systemd's TimeoutStopSec=30 in both units: 10 s to spare)."""
FINAL_WRITE = 5.0
"""Of :data:`STOP_BUDGET`, what is kept for the last write of the ``daemons`` row (SQLite's
busy timeout, PostgreSQL's connect timeout); the threads' waits share the rest."""


class Waker:
    """A non-blocking self-pipe: :meth:`wake` from any thread or a signal, :meth:`wait` on the
    main thread. Writing never blocks: a full pipe already holds a pending wake-up."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    @property
    def signal_fd(self) -> int:
        """The end :func:`signal.set_wakeup_fd` writes to."""
        return self._write

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> bool:
        """Sleep until woken or ``timeout`` seconds pass; True when woken. Drains the pipe."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._read, 512):
                pass
        return True

    def close(self) -> None:
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)


class SignalFlags:
    """SIGTERM/SIGINT -> ``stop``, SIGHUP -> ``reload``, SIGUSR1 -> ``reconcile``.

    :meth:`handler` only assigns an attribute: it takes no lock, does no I/O and never blocks.
    The main loop reads and clears the flags after :meth:`Waker.wait` returns.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)

    def __init__(self) -> None:
        self.stop = False
        self.reload = False
        self.reconcile = False
        self._previous_fd: int | None = None

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stop = True
        elif signum == signal.SIGHUP:
            self.reload = True
        elif signum == signal.SIGUSR1:
            self.reconcile = True

    def install(self, waker: Waker) -> None:
        """Route the signals here and their wake-ups to ``waker`` (main thread only)."""
        self._previous_fd = signal.set_wakeup_fd(waker.signal_fd, warn_on_full_buffer=False)
        for sig in self.SIGNALS:
            signal.signal(sig, self.handler)

    def take_reload(self) -> bool:
        pending, self.reload = self.reload, False
        return pending

    def take_reconcile(self) -> bool:
        pending, self.reconcile = self.reconcile, False
        return pending

    def uninstall(self) -> None:
        for sig in self.SIGNALS:
            default = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, default)
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None


class _Extender(Protocol):
    def extend_timeout(self, seconds: float) -> bool: ...


class StartKeeper:
    """Asks systemd for ``extend`` more seconds at :meth:`start` and every ``every`` seconds
    until :meth:`done` (or the end of a ``with`` block), for at most ``limit`` seconds (then
    ``daemon.start_slow`` is logged and the keeper stops asking). ``what`` names the phase the
    start is in (the caller updates it); it is logged with each extension."""

    def __init__(
        self,
        notifier: _Extender,
        what: str,
        *,
        every: float = 10.0,
        extend: float = 30.0,
        limit: float = 1800.0,
    ) -> None:
        self.notifier = notifier
        self.what = what
        self.every = every
        self.extend = extend
        self.limit = limit
        self.sent = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="assetd-start-keeper", daemon=True)

    def start(self) -> StartKeeper:
        self.notifier.extend_timeout(self.extend)
        self.sent = 1
        self._thread.start()
        return self

    def done(self) -> None:
        """The start is over (READY=1 next, or it failed); idempotent."""
        self._done.set()
        if self._thread.ident is not None:
            self._thread.join(1.0)

    def __enter__(self) -> StartKeeper:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.done()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self.every):
            waited = time.monotonic() - started
            if waited >= self.limit:
                _log.error("daemon.start_slow", doing=self.what, waited_s=round(waited, 1))
                return
            self.notifier.extend_timeout(self.extend)
            self.sent += 1
            _log.info("daemon.start_extended", doing=self.what, waited_s=round(waited, 1))


class StopBudget:
    """One deadline for every wait of a stop. ``left(cap)`` is the time the next wait may take;
    :meth:`check` logs ``daemon.stop_timeout`` when a wait ended without its part stopping."""

    def __init__(
        self, total: float = STOP_BUDGET - FINAL_WRITE, clock: Clock = time.monotonic
    ) -> None:
        self.total = total
        self.clock = clock
        self.deadline = clock() + total
        self.timed_out: list[str] = []

    def left(self, cap: float) -> float:
        return max(0.0, min(cap, self.deadline - self.clock()))

    def check(self, part: str, stopped: bool, **detail: object) -> bool:
        """Record whether ``part`` stopped in time; returns ``stopped``."""
        if not stopped:
            self.timed_out.append(part)
            _log.error(
                "daemon.stop_timeout",
                waiting_for=part,
                budget_s=self.total,
                left_s=round(max(0.0, self.deadline - self.clock()), 2),
                **detail,
            )
        return stopped
