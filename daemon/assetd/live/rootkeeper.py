"""What a root going away or coming back does (DESIGN §4, §6), applied on the service's main
loop from the :class:`~assetd.live.rootstate.RootMonitor`'s verdicts (no filesystem I/O here).

- ``unavailable`` (``missing``, ``not-mounted``, ``not-a-directory``, ``not-responding``): the
  root's watcher stops, its live rows are marked missing with ``root-unavailable`` in one
  statement, ``root.unavailable`` is logged once with the reason.
- ``unavailable`` (``permission-denied``): the watcher stops and the rows are left as they are
  (what cannot be read is unknown, not gone).
- ``covered`` (another filesystem mounted over a plain-directory root): the watcher stops, the
  rows are marked missing with ``root-covered``; the covering filesystem is not catalogued. A
  root with nothing catalogued (no live or covered row) adopts the new filesystem instead.
- back: the state returns to watching/polling, ``root.restored`` is logged, the root is watched
  and reconciled (which restores its rows).
- replaced (present, but another directory at the path: ``mv root root.old; mkdir root``): the
  watcher restarts on the new directory and the root is reconciled.
- first seen (nothing recorded yet) or remounted with a new device number: the record is updated.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.catalog.engine import SessionFactory, one_line
from assetd.catalog.roots import (
    RootSpec,
    RootState,
    has_rows_to_hide,
    mark_root_away,
    record_root_facts,
    set_root_state,
)
from assetd.live.rootstate import RootMonitor
from assetd.rootfacts import Presence, RootFacts, Verdict, Why

_log = log.get_logger(__name__)

WatchFn = Callable[[RootSpec], None]
UnwatchFn = Callable[[str], object]
ReconcileFn = Callable[[str, int], object]
FactsFn = Callable[[int], RootFacts | None]


class RootKeeper:
    """Applies presence verdicts; ``away`` holds the roots that are not present, by id."""

    def __init__(
        self,
        sessions: SessionFactory,
        monitor: RootMonitor,
        *,
        away: dict[int, Verdict] | None = None,
        watch: WatchFn,
        unwatch: UnwatchFn,
        reconcile: ReconcileFn,
        bump: Callable[[RootSpec, str | None], None],
        on_away: Callable[[RootSpec, int], None] | None = None,
        on_back: Callable[[RootSpec], object] | None = None,
    ) -> None:
        self.sessions = sessions
        self.monitor = monitor
        self.away: dict[int, Verdict] = away if away is not None else {}
        self._identity: dict[int, tuple[int, int]] = {}
        self._watch = watch
        self._unwatch = unwatch
        self._reconcile = reconcile
        self._bump = bump
        self._on_away = on_away  # told after the rows are marked (the API's event feed)
        self._on_back = on_back  # told when a root is back or replaced (the hasher retries)
        self._noted: set[str] = set()  # roots a reconcile pass found away (any thread)
        self._lost: set[str] = set()  # roots whose watch saw the root itself go (any thread)
        self._noted_lock = threading.Lock()

    def start(self, roots: Sequence[RootSpec]) -> list[RootSpec]:
        """Judge every root once (bounded by the probe timeout) and act on it, then keep
        judging on the monitor's thread; returns the roots (records may have been decided)."""
        self.monitor.check_now()
        updated = self.tick(roots)
        self.monitor.start()
        return updated

    def note_away(self, names: Iterable[str]) -> None:
        """A reconcile pass found these roots away and marked their rows (any thread; never
        blocks). The monitor may not have seen it (the root can be back before its next probe),
        so the next :meth:`tick` takes them as away: a root that is there again then comes back
        (watched and reconciled) instead of keeping its rows root-unavailable."""
        with self._noted_lock:
            self._noted.update(names)

    def note_watch_lost(self, name: str) -> None:
        """The root's watch saw the root directory itself deleted or moved (any thread, even a
        watchdog callback: never blocks). A directory put back at the path may get the same
        inode number (ext4 reuses them at once), which the identity check cannot tell from the
        old one, while the old watch is dead: the next fresh verdict decides instead, present
        (re-watched and reconciled, as replaced) or gone (away, as any root)."""
        self.monitor.forget(name)  # first: a verdict from before the loss must not decide
        with self._noted_lock:
            self._lost.add(name)

    def _take_lost(self, roots: Sequence[RootSpec], verdicts: dict[int, Verdict]) -> None:
        with self._noted_lock:
            lost = set(self._lost)
        for root in roots:
            verdict = verdicts.get(root.id)
            if root.name not in lost or verdict is None:
                continue  # no fresh look yet: the next tick
            with self._noted_lock:
                self._lost.discard(root.name)
            if verdict.present and root.id not in self.away:
                self._replaced(root)
                if verdict.identity is not None:
                    self._identity[root.id] = verdict.identity

    def _take_noted(self, roots: Sequence[RootSpec]) -> None:
        with self._noted_lock:
            names, self._noted = self._noted, set()
        for root in roots:
            if root.name in names and root.id not in self.away:
                self._unwatch(root.name)
                self.away[root.id] = Verdict(Presence.UNAVAILABLE, Why.MISSING)
                self._identity.pop(root.id, None)

    def tick(self, roots: Sequence[RootSpec]) -> list[RootSpec]:
        """Act on the monitor's latest verdicts (the main loop, every tick: no I/O unless a
        verdict changed); returns the roots, with any record the keeper decided."""
        self._take_noted(roots)
        verdicts = self.monitor.verdicts()
        self._take_lost(roots, verdicts)
        updated = self.apply(roots, verdicts, self.monitor.facts)
        if updated is None:
            return list(roots)
        self.monitor.set_roots(updated)
        return updated

    def apply(
        self, roots: Sequence[RootSpec], verdicts: dict[int, Verdict], facts: FactsFn
    ) -> list[RootSpec] | None:
        """Act on every verdict that changed; returns the root specs when a record was updated
        (the caller passes them on to the monitor), else None."""
        updated = list(roots)
        changed = False
        for i, root in enumerate(roots):
            verdict = verdicts.get(root.id)
            if verdict is None:
                continue
            try:
                new = self._apply_one(root, verdict, facts(root.id))
            except SQLAlchemyError as err:
                _log.error("root.unavailable_failed", root=root.name, error=one_line(err))
                continue
            if new is not None:
                updated[i] = new
                changed = True
        return updated if changed else None

    def _apply_one(
        self, root: RootSpec, verdict: Verdict, facts: RootFacts | None
    ) -> RootSpec | None:
        if verdict.presence == Presence.COVERED and facts is not None:
            with self.sessions() as s:
                hidden = has_rows_to_hide(s, root.id)
            if not hidden:  # nothing of ours under it: the new filesystem is the root now
                return self._record(root, facts)
        if not verdict.present:
            if self.away.get(root.id) != verdict:
                self._go_away(root, verdict)
            return None
        spec = None
        if facts is not None and facts.device is not None and facts.device != root.device:
            spec = self._record(root, facts)  # first seen, or remounted (a new device number)
        if root.id in self.away:
            self._come_back(spec or root)
        elif (
            verdict.identity is not None
            and root.id in self._identity
            and self._identity[root.id] != verdict.identity
        ):
            self._replaced(spec or root)
        if verdict.identity is not None:
            self._identity[root.id] = verdict.identity
        return spec

    def _record(self, root: RootSpec, facts: RootFacts) -> RootSpec:
        with self.sessions() as s, s.begin():
            record_root_facts(s, root.id, facts.device, facts.is_mount)
        return dataclasses.replace(root, device=facts.device, is_mount=facts.is_mount)

    def _go_away(self, root: RootSpec, verdict: Verdict) -> None:
        self._unwatch(root.name)
        with self.sessions() as s, s.begin():  # (permission-denied: the rows stay as they are)
            count = mark_root_away(s, root, verdict.presence, verdict.reason)
        self.away[root.id] = verdict
        self._identity.pop(root.id, None)
        if verdict.presence == Presence.COVERED:
            _log.warning("root.covered", root=root.name, path=root.path, missing=count)
        else:
            _log.warning(
                "root.unavailable",
                root=root.name,
                path=root.path,
                reason=verdict.reason,
                missing=count,
            )
        if self._on_away is not None:
            self._on_away(root, count)

    def _come_back(self, root: RootSpec) -> None:
        was = self.away[root.id]
        with self.sessions() as s, s.begin():
            state = RootState.POLLING if root.polling else RootState.WATCHING
            set_root_state(s, root.id, state, None)
        del self.away[root.id]
        _log.info("root.restored", root=root.name, path=root.path, was=was.reason or was.presence)
        self._bump(root, None)
        self._watch(root)
        self._reconcile("root back", root.id)
        if self._on_back is not None:
            self._on_back(root)

    def _replaced(self, root: RootSpec) -> None:
        _log.warning("root.replaced", root=root.name, path=root.path)
        self._unwatch(root.name)
        self._bump(root, "root replaced")
        self._watch(root)
        self._reconcile("root replaced", root.id)
        if self._on_back is not None:
            self._on_back(root)
