"""When and what to rescan after lost events (an overflow): pure logic, no I/O, no threads.

A root whose events were lost (a kernel queue overflow of inotify or fanotify, an event the
fanotify reader could not place, or the daemon's own change queue full) opens an *episode*. The
recovery starts once the root's changes have paused for :data:`QUIET` seconds (the burst that
overflowed the queue has passed: a rescan during it would compete with the reader for the
cores and overflow it again), and at the latest :data:`SETTLE_MAX` seconds after the
episode's first loss. Before issue 15's session 5 it waited a fixed 2 s after the last loss.

Each loss says from when events may have been lost (``since``, wall time: the reader's last
read that found the queue empty before the data holding the overflow; see
:mod:`assetd.live.inotify_read`), or ``None`` when that is not known. An episode keeps the
earliest ``since``, or ``None`` as soon as one loss has none: the recovery is then a reconcile
of the whole root. Otherwise it is a rescan of the directories changed since then
(:mod:`assetd.touched`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["QUIET", "SETTLE_MAX", "Episode", "Recovery"]

QUIET = 0.1
"""Seconds without a change of the root before its recovery starts."""
SETTLE_MAX = 5.0
"""Seconds after the episode's first loss by which its recovery starts even if changes go on."""


@dataclass(slots=True)
class Episode:
    """Lost events of one root, not yet recovered."""

    since: float | None  # wall time from which events may be lost; None: not known
    first: float  # monotonic time of the first loss
    seen: int  # the root's change count when last looked at
    moved: float  # monotonic time that count last moved
    losses: int = 1


class Recovery:
    """The open episodes, by root name. One owner thread (the daemon's main loop)."""

    def __init__(self, *, quiet: float = QUIET, settle_max: float = SETTLE_MAX) -> None:
        self.quiet = quiet
        self.settle_max = settle_max
        self.episodes: dict[str, Episode] = {}

    def lost(self, root: str, since: float | None, changes: int, now: float) -> None:
        """Root ``root`` lost events from ``since`` on; ``changes``: its change count now."""
        ep = self.episodes.get(root)
        if ep is None:
            self.episodes[root] = Episode(since, now, changes, now)
            return
        ep.losses += 1
        ep.since = None if since is None or ep.since is None else min(ep.since, since)
        if changes != ep.seen:
            ep.seen, ep.moved = changes, now

    def due(self, counts: dict[str, int], now: float) -> list[tuple[str, Episode]]:
        """The episodes to recover now (removed from the open ones). ``counts``: each root's
        change count now (a root missing from it is taken as quiet)."""
        out = []
        for root, ep in list(self.episodes.items()):
            count = counts.get(root, ep.seen)
            if count != ep.seen:
                ep.seen, ep.moved = count, now
            if now - ep.moved >= self.quiet or now - ep.first >= self.settle_max:
                out.append((root, self.episodes.pop(root)))
        return out

    def wait(self, now: float) -> float | None:
        """Seconds until an open episode may be due (None: none open)."""
        if not self.episodes:
            return None
        return max(
            0.005,
            min(
                min(ep.moved + self.quiet, ep.first + self.settle_max) - now
                for ep in self.episodes.values()
            ),
        )
