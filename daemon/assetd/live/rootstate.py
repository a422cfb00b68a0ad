"""The root presence monitor: looks at every root off the main loop, with a deadline.

One thread wakes every ``interval`` seconds, at once when the mount table changes
(``/proc/self/mountinfo`` is pollable: ``POLLPRI``/``POLLERR`` after a mount or an unmount), or
when :meth:`RootMonitor.poke` is called (the watcher saw the root deleted or moved). It starts
one probe per root on a short-lived daemon thread and never waits for it: a probe that has not
answered after ``timeout`` seconds makes the root ``unavailable`` (``not-responding``), and no
second probe of that root starts until the first returns (a stat stuck on a dead NFS server
cannot be interrupted; it costs one thread, not one per second). The verdicts are read by the
service's main loop (:meth:`RootMonitor.verdicts`), which applies the transitions.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from assetd import log
from assetd.catalog.roots import RootSpec
from assetd.rootfacts import (
    MOUNTINFO,
    NOT_RESPONDING,
    PROBE_TIMEOUT,
    Recorded,
    RootFacts,
    Verdict,
    judge,
    probe,
    read_mount_points,
)

_log = log.get_logger(__name__)

INTERVAL = 1.0

ProbeFn = Callable[[str, set[str] | None], RootFacts]
Clock = Callable[[], float]


def default_probe(path: str, mounts: set[str] | None) -> RootFacts:
    return probe(path, mounts=mounts)


@dataclass
class _Probe:
    started: float
    thread: threading.Thread


def recorded(root: RootSpec) -> Recorded:
    return Recorded(root.device, root.is_mount)


class RootMonitor:
    """Presence verdicts of the roots, kept fresh by a thread (see the module docstring)."""

    def __init__(
        self,
        roots: Sequence[RootSpec],
        on_change: Callable[[], None],
        *,
        probe: ProbeFn = default_probe,
        timeout: float = PROBE_TIMEOUT,
        interval: float = INTERVAL,
        mountinfo: str = MOUNTINFO,
        clock: Clock = time.monotonic,
    ) -> None:
        self._roots = {r.id: r for r in roots}
        self._on_change = on_change
        self._probe = probe
        self.timeout = timeout
        self.interval = interval
        self._mountinfo = mountinfo
        self._clock = clock
        self._lock = threading.Lock()
        self._verdicts: dict[int, Verdict] = {}
        self._facts: dict[int, RootFacts] = {}
        self._inflight: dict[int, _Probe] = {}
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread: threading.Thread | None = None

    # --- what the service uses ---------------------------------------------------------------

    def set_roots(self, roots: Sequence[RootSpec]) -> None:
        with self._lock:
            self._roots = {r.id: r for r in roots}
            for gone in set(self._verdicts) - set(self._roots):
                del self._verdicts[gone]
        self.poke()

    def verdicts(self) -> dict[int, Verdict]:
        with self._lock:
            return dict(self._verdicts)

    def facts(self, root_id: int) -> RootFacts | None:
        with self._lock:
            return self._facts.get(root_id)

    def forget(self, name: str) -> None:
        """Drop the root's verdict and look again now: the next verdict is a fresh look (from
        any thread; never blocks on I/O)."""
        with self._lock:
            for root_id, root in self._roots.items():
                if root.name == name:
                    self._verdicts.pop(root_id, None)
        self.poke()

    def check_now(self) -> dict[int, Verdict]:
        """One round on the caller's thread, waiting at most ``timeout`` for the probes (the
        start-up check, before any root is watched)."""
        self._round()
        deadline = self._clock() + self.timeout
        for root_id in list(self._roots):
            with self._lock:
                running = self._inflight.get(root_id)
            if running is not None:
                running.thread.join(max(0.0, deadline - self._clock()))
        self._expire()
        return self.verdicts()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="assetd-roots", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Look again now (from any thread, even a watchdog callback: never blocks)."""
        with contextlib.suppress(OSError):  # the pipe is full: a wake-up is pending already
            os.write(self._wake_w, b"x")

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.poke()
        deadline = self._clock() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            probes = [p.thread for p in self._inflight.values()]
        for thread in probes:  # a probe stuck on a dead mount is left behind (a daemon thread)
            thread.join(max(0.0, deadline - self._clock()))
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        table = self._open_mountinfo(poller)
        while not self._stop.is_set():
            try:
                self._round()
                events = poller.poll(self.interval * 1000)
                for fd, _ in events:
                    if fd == self._wake_r:
                        self._drain()
                    elif table is not None and fd == table.fileno():
                        table.seek(0)
                        table.read()  # re-arms POLLPRI
                self._expire()
            except Exception as err:  # never let the monitor die: log, wait, go on
                _log.error("root_monitor.error", error=repr(err))
                self._stop.wait(self.interval)
        if table is not None:
            table.close()

    def _open_mountinfo(self, poller: select.poll) -> TextIO | None:
        try:
            table = open(self._mountinfo, encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        except OSError:
            return None  # no mount table (not Linux): the interval alone
        table.read()
        poller.register(table.fileno(), select.POLLPRI | select.POLLERR)
        return table

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError:
            pass

    def _round(self) -> None:
        mounts = read_mount_points(self._mountinfo)
        with self._lock:
            roots = list(self._roots.values())
        for root in roots:
            with self._lock:
                if root.id in self._inflight:
                    continue
                thread = threading.Thread(
                    target=self._probe_one,
                    args=(root, mounts),
                    name=f"assetd-probe-{root.name}",
                    daemon=True,
                )
                self._inflight[root.id] = _Probe(self._clock(), thread)
            thread.start()

    def _probe_one(self, root: RootSpec, mounts: set[str] | None) -> None:
        try:
            facts = self._probe(root.path, mounts)
        except Exception as err:  # a bug in a probe is not a verdict
            _log.error("root_monitor.error", root=root.name, error=repr(err))
            with self._lock:
                self._inflight.pop(root.id, None)
            return
        with self._lock:
            self._inflight.pop(root.id, None)
            current = self._roots.get(root.id)
            if current is None:
                return
            self._facts[root.id] = facts
            changed = self._set(root.id, judge(facts, recorded(current)))
        if changed:
            self._on_change()

    def _expire(self) -> None:
        """Roots whose probe has not answered within ``timeout``: not-responding."""
        now = self._clock()
        changed = False
        with self._lock:
            for root_id, running in self._inflight.items():
                if now - running.started >= self.timeout and root_id in self._roots:
                    changed |= self._set(root_id, NOT_RESPONDING)
        if changed:
            self._on_change()

    def _set(self, root_id: int, verdict: Verdict) -> bool:
        """Store a verdict (lock held); True when it differs from the last one."""
        if self._verdicts.get(root_id) == verdict:
            return False
        self._verdicts[root_id] = verdict
        return True
