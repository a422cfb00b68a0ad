"""Lost events (issue 15): an overflow's recovery starts once the burst pauses and rescans the
directories changed since the loss (:mod:`assetd.touched`), not the whole root, on both
backends. Real directories, a real catalog, real observers; a real kernel queue overflow, forced
by a small queue made for the group under test only (the global limit is restored as soon as
the group exists) while this process holds the GIL so that its reader cannot drain."""

from __future__ import annotations

import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest

from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec
from assetd.fsutil import IgnoreRules
from assetd.live import fanotify_sys as fsys
from assetd.live.backend import fanotify_unavailable
from assetd.live.changes import Change, Kind
from assetd.live.lost import LostEvents
from assetd.live.observers import RootWatcher
from assetd.live.recovery import Recovery
from assetd.live.scheduler import BACKLOG_WAIT, ReconcileScheduler
from assetd.live.watch import QueueSink
from assetd.log import configure_logging
from assetd.reconcile import ReconcileResult
from assetd.reconcile_dirs import reconcile_directories
from assetd.touched import SLACK, touched_dirs
from catalog_world import World, make_world
from helpers import Timeout, run_starving_readers, wait_until

DIRS, FILES = 12, 40


# --- the episode logic (pure) --------------------------------------------------------------


def test_a_recovery_waits_for_the_root_to_pause_not_a_fixed_time() -> None:
    rec = Recovery(quiet=0.1, settle_max=5.0)
    rec.lost("r", 100.0, changes=10, now=0.0)
    assert rec.due({"r": 50}, now=0.05) == []  # changes still coming
    assert rec.due({"r": 90}, now=0.12) == []  # ... and still
    assert rec.due({"r": 90}, now=0.19) == []  # paused 0.07 s
    [(name, episode)] = rec.due({"r": 90}, now=0.23)  # paused 0.11 s: now
    assert (name, episode.since, episode.losses) == ("r", 100.0, 1)
    assert rec.episodes == {} and rec.wait(now=0.3) is None


def test_a_recovery_starts_by_settle_max_while_changes_go_on() -> None:
    rec = Recovery(quiet=0.1, settle_max=5.0)
    rec.lost("r", 100.0, changes=0, now=0.0)
    for step in range(1, 50):
        assert rec.due({"r": step}, now=step * 0.1) == []
    assert [n for n, _ in rec.due({"r": 99}, now=5.0)] == ["r"]


def test_an_episode_keeps_the_earliest_loss_and_unknown_wins() -> None:
    rec = Recovery(quiet=0.1, settle_max=5.0)
    rec.lost("a", 100.0, changes=0, now=0.0)
    rec.lost("a", 90.0, changes=0, now=0.01)
    rec.lost("a", 95.0, changes=0, now=0.02)
    rec.lost("b", 100.0, changes=0, now=0.0)
    rec.lost("b", None, changes=0, now=0.01)
    rec.lost("b", 80.0, changes=0, now=0.02)
    due = dict(rec.due({}, now=1.0))
    assert (due["a"].since, due["a"].losses) == (90.0, 3)
    assert (due["b"].since, due["b"].losses) == (None, 3)


# --- which directories changed (real directories) --------------------------------------------


def _tree(top: Path, dirs: int = DIRS, files: int = FILES) -> None:
    for d in range(dirs):
        sub = top / f"d{d:02d}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03d}").write_bytes(b"x")
    (top / "d00" / "deep").mkdir()
    (top / "d00" / "deep" / "g").write_bytes(b"x")


def _after_slack(top: Path, clock: Path) -> float:
    """Wait until the wall clock is past every ctime below ``top`` by ``SLACK`` and a tick of
    the kernel's coarse clock (timestamps come from it), as seen on a file of ``clock``: from
    the time returned on, a change sets a ctime no directory of the tree had before."""
    newest = max(
        os.lstat(os.path.join(d, n)).st_ctime_ns for d, ds, fs in os.walk(top) for n in ds + fs
    )
    until = newest / 1e9 + SLACK
    wait_until(lambda: time.time() > until, timeout=10, what="the tree older than SLACK")

    def ticked() -> bool:
        clock.write_bytes(b"t")
        return os.lstat(clock).st_ctime_ns > newest + SLACK * 1e9

    wait_until(ticked, timeout=10, what="the coarse clock past the slack")
    return os.lstat(clock).st_ctime_ns / 1e9


_CHANGES = """
import os, sys
top = sys.argv[1]
for f in range(40):
    os.unlink(f"{top}/d01/f{f:03d}")                 # deleted
    with open(f"{top}/d02/f{f:03d}", "ab") as out:   # written in place
        out.write(b"more")
    os.rename(f"{top}/d04/f{f:03d}", f"{top}/d05/m{f:03d}")  # moved across
os.mkdir(f"{top}/d03/new")
for f in range(30):
    with open(f"{top}/d03/new/n{f:03d}", "wb") as out:   # a new directory's files
        out.write(b"new")
"""
CHANGED = ["d01", "d02", "d03", "d03/new", "d04", "d05"]


def test_touched_dirs_names_the_changed_directories_only(tmp_path: Path) -> None:
    top = tmp_path / "lib"
    _tree(top)
    since = _after_slack(top, tmp_path / "clock")
    subprocess.run([sys.executable, "-c", _CHANGES, str(top)], check=True)
    (top / "d00" / "deep" / "g").write_bytes(b"y")  # a file written two levels down
    found = touched_dirs(str(top), since).dirs
    named = [str(top / d) for d in ("d00/deep", *CHANGED)]
    assert found == named  # not d00 above d00/deep, not the root, not d06-d11
    assert touched_dirs(str(top), since, ignored=lambda name: name == "deep").dirs == named[1:]
    every = [str(top), *(str(p) for p in sorted(top.rglob("*")) if p.is_dir())]
    assert touched_dirs(str(top), time.time() + 60) == ([], len(every))  # nothing that new
    assert touched_dirs(str(top), since - 3600).dirs == sorted(every, key=os.fsencode)
    # in two looks: the directories' own ctimes (entries made, removed, renamed), then the
    # files written in place in the others
    entries = touched_dirs(str(top), since, files=False).dirs
    assert entries == [str(top / d) for d in CHANGED if d != "d02"]
    rest = touched_dirs(str(top), since, skip=set(entries)).dirs
    assert rest == [str(top / "d00/deep"), str(top / "d02")]


# --- a real overflow, recovered ----------------------------------------------------------------


@contextmanager
def _queue_limit(knob: str, limit: int) -> Iterator[None]:
    """``fs.<knob>.max_queued_events`` set to ``limit`` (a global sysctl, read when a group is
    made) for the block only: restored at its end, whatever happens."""
    path = Path(f"/proc/sys/fs/{knob}/max_queued_events")
    old = path.read_text()
    path.write_text(str(limit))
    try:
        yield
    finally:
        path.write_text(old)


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _scheduler(
    world: World, results: list[ReconcileResult], live_busy: Callable[[], bool] = lambda: False
) -> ReconcileScheduler:
    """A reconcile scheduler of the world's one root that keeps each result in ``results``."""
    return ReconcileScheduler(
        world.sessions,
        lambda: [world.root],
        interval=3600,
        poll_intervals=dict,
        on_finished=results.append,
        live_busy=live_busy,
    )


def _events(buf: io.StringIO, name: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


@pytest.mark.skipif(os.geteuid() != 0, reason="sets a kernel queue limit (a sysctl): root only")
@pytest.mark.parametrize("backend", ["inotify", "fanotify"])
def test_an_overflow_rescans_the_changed_directories_and_catches_every_change(
    world: World, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "fanotify":
        why = fanotify_unavailable(str(world.dir))
        if why is not None:
            pytest.skip(f"fanotify: {why}")
        # a group with the kernel's bounded queue (the daemon's is unlimited)
        limited = fsys.INIT_FLAGS & ~fsys.FAN_UNLIMITED_QUEUE
        monkeypatch.setattr(fsys, "init_group", partial(fsys.init_group, limited))
    top = world.dir
    _tree(top)
    world.scan()
    _after_slack(top, tmp_path / "clock")
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    root: RootSpec = world.root
    results: list[ReconcileResult] = []
    scheduler = _scheduler(world, results)
    changes: queue.Queue[Change | None] = queue.Queue(maxsize=100_000)
    sinks: dict[str, QueueSink] = {}
    watchers: dict[str, RootWatcher] = {}
    bumps: list[str] = []
    lost = LostEvents(
        wake=lambda: None,
        roots=lambda: [root],
        sinks=sinks,
        watcher=watchers.get,
        bump=lambda _root, why: bumps.append(why),
        scheduler=lambda: scheduler,
    )
    sinks[root.name] = QueueSink(changes, lost.report, root_name=root.name)
    watcher = RootWatcher(
        root,
        sinks[root.name],
        IgnoreRules([]),
        on_overflow=lost.report,
        on_root_event=lambda *_: None,
        backend=backend,
    )
    watchers[root.name] = watcher
    knob = "inotify" if backend == "inotify" else "fanotify"
    with _queue_limit(knob, 16):
        watcher.start()
    scheduler.start()
    try:
        run_starving_readers(_CHANGES, str(top), flag=tmp_path / "flag")
        wait_until(lambda: watcher.overflows, timeout=30, what="the kernel queue overflowed")

        def recovered() -> bool:
            lost.handle()  # the daemon's main loop does this each wake-up
            return len(results) >= 2  # the directories whose entries changed, then files

        wait_until(recovered, timeout=30, what="the rescan after the overflow")
    finally:
        scheduler.stop()
        assert watcher.stop()
    assert bumps and set(bumps) == {"overflow"}
    # (a fanotify group sees the whole filesystem: the catalog's own writes can overflow its
    # queue of 16 again, and be recovered again, in the same way)
    assert {e["rescan"] for e in _events(buf, "overflow.recovery")} == {"changed"}
    entries, files = _events(buf, "reconcile.rescan")[:2]
    # d01, d03, d03/new, d04, d05 first (their own ctimes), then d02 (its files written in
    # place): not the others, not the root
    assert (entries["look"], entries["directories"]) == ("entries", len(CHANGED) - 1)
    assert (files["look"], files["directories"]) == ("files", 1)
    assert _events(buf, "reconcile.started") == []  # no whole-root reconcile
    first, second = results[:2]
    # walked: d03's and d05's 40 files each, unchanged; not the untouched directories' 280
    assert first.unchanged == 2 * FILES
    assert (first.missing, first.moved, first.new) == (FILES, FILES, 30)
    assert (second.changed, second.unchanged, second.missing) == (FILES, 0, 0)
    after = world.scan()  # every change was caught: a full pass finds nothing left to do
    assert (after.new, after.missing, after.changed, after.restored) == (0, 0, 0, 0)


def test_a_rescan_reads_a_changed_directory_alone_not_its_subdirectories(
    world: World, tmp_path: Path
) -> None:
    """The root's entries changed (a file made in it, a directory gone, one moved in from
    outside with a tree below it): the root's own files are compared, the gone directory's rows
    marked missing however deep, the moved-in tree walked whole; the untouched subdirectories'
    files are not read."""
    top = world.dir
    _tree(top)
    (top / "gone" / "deep").mkdir(parents=True)
    (top / "gone" / "deep" / "a").write_bytes(b"x")
    (top / "top-file").write_bytes(b"x")
    outside = tmp_path / "outside" / "tree"
    (outside / "below").mkdir(parents=True)
    for f in range(5):
        (outside / "below" / f"b{f}").write_bytes(b"b")
    world.scan()
    since = _after_slack(tmp_path, tmp_path / "clock")  # the tree outside too
    (top / "new-file").write_bytes(b"n")
    (top / "gone" / "deep" / "a").unlink()
    (top / "gone" / "deep").rmdir()
    (top / "gone").rmdir()
    os.rename(outside, top / "moved-in")  # its files keep their ctimes
    tops = touched_dirs(str(top), since).dirs
    assert tops == [str(top), str(top / "moved-in")]  # "below"'s ctime is as it was
    with world.sessions() as session:
        result = reconcile_directories(session, world.root, tops)
    assert (result.new, result.missing, result.unchanged) == (1 + 5, 1, 1)  # top-file unchanged
    after = world.scan()
    assert (after.new, after.missing, after.changed, after.restored) == (0, 0, 0, 0)


class _Overflowed:
    """Stands in for a root's watcher that reported a kernel overflow at wall time 1000."""

    def take_lost_since(self) -> tuple[bool, float | None]:
        return True, 1000.0

    def activity(self) -> int:
        return 0


class _Requests:
    """Stands in for the scheduler: what the recovery asked of it."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int, float | None]] = []

    def request(self, reason: str, root_id: int | None = None, delay: float = 0.0) -> None:
        assert root_id is not None
        self.asked.append((reason, root_id, None))

    def request_rescan(self, reason: str, root_id: int, since: float) -> None:
        self.asked.append((reason, root_id, since))


def test_a_change_dropped_from_the_daemons_queue_makes_it_the_whole_root(world: World) -> None:
    """A change the daemon's own queue had no room for may have waited in the kernel's long
    before: the time of the loss is not known, so the recovery reconciles the whole root; a
    kernel overflow of known time alone gets a rescan of what changed since."""
    root = world.root
    clock = [0.0]
    requests = _Requests()
    changes: queue.Queue[Change | None] = queue.Queue(maxsize=1)
    sinks: dict[str, QueueSink] = {}
    lost = LostEvents(
        wake=lambda: None,
        roots=lambda: [root],
        sinks=sinks,
        watcher=lambda _name: _Overflowed(),
        bump=lambda _root, _why: None,
        scheduler=lambda: requests,  # type: ignore[arg-type,return-value]
        clock=lambda: clock[0],
    )
    sinks[root.name] = sink = QueueSink(changes, lost.report, root_name=root.name)
    lost.report(root.name)  # a kernel overflow, its time known
    lost.handle()
    clock[0] = 0.2
    lost.handle()
    assert requests.asked == [("overflow", root.id, 1000.0)]
    sink.put(Change(Kind.DELETED, str(world.dir / "a")))
    sink.put(Change(Kind.DELETED, str(world.dir / "b")))  # no room: dropped, reported
    assert sink.overflowed
    lost.handle()
    assert not sink.overflowed  # reset: a later drop is reported again
    clock[0] = 0.5
    lost.handle()
    assert requests.asked[1:] == [("overflow", root.id, None)]  # the whole root
    assert lost.recovery.episodes == {} and lost.wait() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="sets a kernel queue limit (a sysctl): root only")
def test_when_most_directories_changed_the_recovery_is_one_pass_of_the_root(
    world: World, tmp_path: Path
) -> None:
    """Reading each changed directory alone costs more than one pass once most changed: the
    rescan of 9 of 13 directories is a reconcile of the root, and it catches every change."""
    top = world.dir
    _tree(top, dirs=12, files=10)
    world.scan()
    since = _after_slack(top, tmp_path / "clock")
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    root: RootSpec = world.root
    results: list[ReconcileResult] = []
    scheduler = _scheduler(world, results)
    scheduler.start()
    try:
        for d in range(9):
            (top / f"d{d:02d}" / "f000").unlink()
        scheduler.request_rescan("overflow", root.id, since)
        wait_until(lambda: results, timeout=30, what="the recovery")
    finally:
        scheduler.stop()
    [started] = _events(buf, "reconcile.started")
    assert started["reason"] == "overflow: 9 of 14 directories changed"
    assert _events(buf, "reconcile.rescan") == []
    assert results[0].missing == 9


def test_a_rescan_waits_for_the_live_pipelines_backlog_first(world: World, tmp_path: Path) -> None:
    """Both write the catalog, and SQLite takes one writer at a time: the rescan reads its
    directories once the live pipeline has applied what it held (at most BACKLOG_WAIT s)."""
    top = world.dir
    _tree(top)
    world.scan()
    since = _after_slack(top, tmp_path / "clock")
    (top / "d01" / "f000").unlink()
    applied = threading.Event()  # stands in for the live pipeline: busy until set
    results: list[ReconcileResult] = []
    scheduler = _scheduler(world, results, live_busy=lambda: not applied.is_set())
    scheduler.start()
    try:
        scheduler.request_rescan("overflow", world.root.id, since)
        with pytest.raises(Timeout):  # held back while the pipeline is busy
            wait_until(lambda: bool(results), timeout=BACKLOG_WAIT / 4, what="no rescan yet")
        applied.set()
        wait_until(lambda: len(results) >= 1, timeout=30, what="the rescan once it is idle")
    finally:
        scheduler.stop()
    assert results[0].missing == 1
