"""assetd.live.watch: event conversion (pure); real inotify on tmp_path (events, overflow,
limits)."""

from __future__ import annotations

import io
import logging
import os
import queue
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
)

from assetd.config import RootConfig
from assetd.errors import WatchError
from assetd.fsutil import IgnoreRules
from assetd.live.changes import Change, Kind
from assetd.live.inotify_bulk import EventBatch, PathRun
from assetd.live.limits import INSTANCES_KEY, WatchLimitError, count_dirs
from assetd.live.observers import RootWatcher, Watchers
from assetd.live.watch import EVENT_FILTER, QueueSink, RootHandler
from assetd.log import configure_logging, reset_logging
from helpers import run_starving_readers, wait_until

ROOT = "/srv/models"
IGNORE = IgnoreRules(["*.tmp", "*.part", ".Trash-*", "@eaDir"])
C, D, M, MV = Kind.CREATED, Kind.DELETED, Kind.MODIFIED, Kind.MOVED


# --- the handler, fed watchdog events directly ---------------------------------------------------


class ListSink:
    def __init__(self, accept: bool = True) -> None:
        self.changes: list[Change] = []
        self.accept = accept

    def put(self, change: Change) -> bool:
        if self.accept:
            self.changes.append(change)
        return self.accept


class Handled:
    """A RootHandler on ROOT with a list sink and recorded root events."""

    def __init__(self, sink: ListSink | None = None) -> None:
        self.sink = sink or ListSink()
        self.root_events: list[tuple[str, Kind]] = []
        self.now = 100.0
        self.handler = RootHandler(
            "models",
            ROOT,
            self.sink,
            IGNORE,
            lambda name, kind: self.root_events.append((name, kind)),
            clock=lambda: self.now,
        )

    def __call__(self, *events: FileSystemEvent) -> list[Change]:
        del self.sink.changes[:]
        for event in events:
            self.handler.dispatch(event)
        return list(self.sink.changes)


def test_each_event_class_becomes_its_change() -> None:
    h = Handled()
    p = f"{ROOT}/a/b.bin"
    assert h(FileCreatedEvent(p)) == [Change(C, p)]
    assert h(DirCreatedEvent(f"{ROOT}/a")) == [Change(C, f"{ROOT}/a", True)]
    assert h(FileDeletedEvent(p)) == [Change(D, p)]
    assert h(DirDeletedEvent(f"{ROOT}/a")) == [Change(D, f"{ROOT}/a", True)]
    assert h(FileModifiedEvent(p)) == [Change(M, p)]
    assert h(FileClosedEvent(p)) == [Change(M, p)]
    assert h(FileAttribEvent(p)) == [Change(M, p)]
    q = f"{ROOT}/c.bin"
    assert h(FileMovedEvent(p, q)) == [Change(MV, p, False, q)]
    assert h(DirMovedEvent(f"{ROOT}/a", f"{ROOT}/z")) == [
        Change(MV, f"{ROOT}/a", True, f"{ROOT}/z")
    ]
    assert h.root_events == []


def test_a_bulk_round_is_its_changes_in_order_and_a_run_shares_its_seen() -> None:
    """An EventBatch of the bulk emitter: events and PathRun runs, in the kernel's order; a
    run's paths are changes of its kind, ignored names dropped, one ``seen`` for the run."""
    h = Handled()
    a, b, t, z = (f"{ROOT}/d/{n}" for n in ("a.bin", "b.bin", "c.tmp", "z"))
    batch = EventBatch(
        ROOT,
        (
            PathRun(ROOT, FileCreatedEvent, [a, t, b]),
            FileMovedEvent(a, z),
            PathRun(ROOT, FileDeletedEvent, [b, t]),
            PathRun(ROOT, DirDeletedEvent, [f"{ROOT}/d"]),
            PathRun(ROOT, FileModifiedEvent, [z]),
        ),
    )
    got = h(batch)
    assert got == [
        Change(C, a),
        Change(C, b),
        Change(MV, a, False, z),
        Change(D, b),
        Change(D, f"{ROOT}/d", True),
        Change(M, z),
    ]
    assert got[0].seen == got[1].seen  # one run, one reading of the clock
    assert h.handler.events == 8  # each path of a run counts as an event
    assert h.handler.errors == 0


@pytest.mark.parametrize("odd", [False, True], ids=["ascii", "undecodable-name"])
def test_a_run_keeps_what_the_event_by_event_conversion_keeps(odd: bool) -> None:
    """The ignore rules on a run (names at once, a directory's verdict once) keep exactly
    the paths that the same events one by one keep; a name that is not ASCII goes one by
    one."""
    paths = [
        f"{ROOT}/{rel}"
        for rel in (
            "a.bin",
            "x.tmp",
            "@eaDir/f.bin",
            "d/.Trash-1000/g.bin",
            "d/h.part",
            "d/e/ok.bin",
            ".Trash-x",
            "d/@eaDir",
            "d/ok2",
            "d/@eaDir/deeper/z",
        )
    ]
    if odd:
        paths.insert(3, f"{ROOT}/d/caf\udcff.bin")
    one_by_one = Handled()(*[FileDeletedEvent(p) for p in paths])
    as_run = Handled()(EventBatch(ROOT, (PathRun(ROOT, FileDeletedEvent, paths),)))
    assert as_run == one_by_one
    assert [c.path for c in as_run] == [
        p for p in paths if p.rpartition("/")[2] in {"a.bin", "ok.bin", "ok2", "caf\udcff.bin"}
    ]


def test_a_run_of_created_and_written_files_is_each_creation_then_its_write() -> None:
    h = Handled()
    a, t, b = (f"{ROOT}/{n}" for n in ("a.bin", "c.tmp", "b.bin"))
    run = PathRun(ROOT, FileCreatedEvent, [a, t, b], written=True)
    assert h(EventBatch(ROOT, (run,))) == [Change(C, a), Change(M, a), Change(C, b), Change(M, b)]
    assert h.handler.events == 6  # the events the run stands for, ignored ones too
    spelled_out = EventBatch(ROOT, (run,)).events
    assert [(type(e), e.src_path) for e in spelled_out] == [
        (cls, p) for p in (a, t, b) for cls in (FileCreatedEvent, FileModifiedEvent)
    ]


def test_a_run_watched_under_another_spelling_is_converted_path_by_path() -> None:
    """A run whose watched directory is not the handler's root as written (a trailing slash)
    goes through the per-event checks: what lies outside the root is dropped."""
    h = Handled()
    inside, outside = f"{ROOT}/a.bin", "/elsewhere/b.bin"
    got = h(EventBatch(ROOT + "/", (PathRun(ROOT + "/", FileDeletedEvent, [inside, outside]),)))
    assert got == [Change(D, inside)]


def test_events_without_information_are_dropped() -> None:
    h = Handled()
    p = f"{ROOT}/a/b.bin"
    dropped = [
        DirModifiedEvent(f"{ROOT}/a"),
        FileOpenedEvent(p),
        FileClosedNoWriteEvent(p),
    ]
    assert h(*dropped) == []
    assert h.handler.events == len(dropped)
    assert h.handler.errors == 0


def test_a_directory_chmod_is_a_look_again() -> None:
    """A directory made readable again (IN_ATTRIB): what changed below it while the daemon
    could not stat it is looked at again, as a new directory is (issue 12, stateful test)."""
    h = Handled()
    assert h(DirAttribEvent(f"{ROOT}/a")) == [Change(C, f"{ROOT}/a", is_dir=True)]


def test_ignored_paths_are_dropped_component_wise() -> None:
    h = Handled()
    assert h(FileCreatedEvent(f"{ROOT}/a/b.tmp")) == []
    assert h(FileCreatedEvent(f"{ROOT}/@eaDir/thumb.jpg")) == []
    assert h(DirCreatedEvent(f"{ROOT}/x/.Trash-1000")) == []
    assert h(FileDeletedEvent(f"{ROOT}/.Trash-0/deep/file.bin")) == []
    kept = f"{ROOT}/atmp/b.tmpx"  # no component matches "*.tmp"
    assert h(FileCreatedEvent(kept)) == [Change(C, kept)]


def test_moves_across_the_ignore_boundary() -> None:
    h = Handled()
    part, final = f"{ROOT}/dl/model.part", f"{ROOT}/dl/model.bin"
    assert h(FileMovedEvent(part, final)) == [Change(C, final)]
    assert h(FileMovedEvent(final, part)) == [Change(D, final)]
    assert h(FileMovedEvent(part, f"{ROOT}/dl/other.tmp")) == []
    trash = f"{ROOT}/.Trash-0/dir"
    assert h(DirMovedEvent(f"{ROOT}/dir", trash)) == [Change(D, f"{ROOT}/dir", True)]
    assert h(DirMovedEvent(trash, f"{ROOT}/dir")) == [Change(C, f"{ROOT}/dir", True)]


def test_moves_across_the_root_boundary_and_unmatched_halves() -> None:
    h = Handled()
    inside = f"{ROOT}/a.bin"
    assert h(FileMovedEvent(inside, "/srv/elsewhere/a.bin")) == [Change(D, inside)]
    assert h(FileMovedEvent("/srv/models-old/a.bin", inside)) == [Change(C, inside)]
    assert h(FileMovedEvent("", inside)) == [Change(C, inside)]
    assert h(FileMovedEvent(inside, "")) == [Change(D, inside)]
    # a sibling whose name starts with the root's is outside it
    assert h(FileCreatedEvent("/srv/models2/a.bin")) == []


def test_the_root_itself() -> None:
    h = Handled()
    assert h(DirModifiedEvent(ROOT), DirCreatedEvent(ROOT), FileClosedEvent(ROOT)) == []
    assert h.root_events == []
    assert h(DirDeletedEvent(ROOT)) == []
    assert h.root_events == [("models", D)]
    assert h(DirMovedEvent(ROOT, "/srv/models.old")) == []
    assert h.root_events == [("models", D), ("models", MV)]


def test_bytes_paths_become_str() -> None:
    h = Handled()
    assert h(FileCreatedEvent(os.fsencode(f"{ROOT}/a.bin"))) == [Change(C, f"{ROOT}/a.bin")]
    raw = os.fsencode(ROOT) + b"/caf\xe9.bin"  # Latin-1, not UTF-8
    assert h(FileCreatedEvent(raw)) == [Change(C, os.fsdecode(raw))]
    moved = os.fsencode(ROOT) + b"/b.bin"
    assert h(FileMovedEvent(raw, moved)) == [Change(MV, os.fsdecode(raw), False, f"{ROOT}/b.bin")]
    # the catalog form of a non-UTF-8 name is what the patterns see: "\xff.tmp" matches "*.tmp"
    assert h(FileCreatedEvent(os.fsencode(ROOT) + b"/\xff.tmp")) == []


def test_an_exception_in_conversion_is_swallowed_and_logged_once_per_type() -> None:
    h = Handled()
    broken = FileCreatedEvent(f"{ROOT}/a.bin")
    object.__setattr__(broken, "src_path", None)  # os.fsdecode(None) raises TypeError
    with structlog.testing.capture_logs() as logs:
        h(broken, broken, broken)
    assert h.handler.errors == 3
    assert [entry["event"] for entry in logs] == ["watch.handler_error"]
    assert logs[0]["root"] == "models"
    # the handler still works afterwards
    assert h(FileCreatedEvent(f"{ROOT}/b.bin")) == [Change(C, f"{ROOT}/b.bin")]


def test_a_raising_sink_or_callback_never_escapes() -> None:
    class Raising:
        def put(self, change: Change) -> bool:
            raise RuntimeError("sink broke")

    def bad_root_event(name: str, kind: Kind) -> None:
        raise KeyError(name)

    handler = RootHandler("models", ROOT, Raising(), IGNORE, bad_root_event)
    with structlog.testing.capture_logs() as logs:
        handler.dispatch(FileCreatedEvent(f"{ROOT}/a.bin"))
        handler.dispatch(DirDeletedEvent(ROOT))
        handler.dispatch(FileCreatedEvent(f"{ROOT}/b.bin"))
    assert handler.errors == 3
    assert [e["error"].split("(")[0] for e in logs] == ["RuntimeError", "KeyError"]


def test_last_event_time_and_counters() -> None:
    h = Handled(ListSink(accept=False))
    assert h.handler.last_event_monotonic == 0.0
    h.now = 123.5
    h(FileCreatedEvent(f"{ROOT}/a.bin"), DirModifiedEvent(f"{ROOT}/x"))
    assert h.handler.last_event_monotonic == 123.5
    assert (h.handler.events, h.handler.dropped) == (2, 1)


def test_event_filter_has_no_directory_modified_events() -> None:
    assert DirModifiedEvent not in EVENT_FILTER
    assert FileOpenedEvent not in EVENT_FILTER and FileClosedNoWriteEvent not in EVENT_FILTER


# --- QueueSink ---------------------------------------------------------------------------------


def test_queue_sink_drops_when_full_and_flags_once_until_reset() -> None:
    changes: queue.Queue[Change | None] = queue.Queue(maxsize=2)
    flagged: list[str] = []
    sink = QueueSink(changes, flagged.append, root_name="models")
    a = Change(C, f"{ROOT}/a")
    assert sink.put(a) and sink.put(a)
    with structlog.testing.capture_logs() as logs:
        assert not sink.put(a)
        assert not sink.put(a)
    assert flagged == ["models"] and sink.dropped == 2 and sink.overflowed
    assert [(e["event"], e["reason"]) for e in logs] == [("watch.overflow", "change-queue")]
    sink.reset()
    assert not sink.overflowed
    assert not sink.put(a)
    assert flagged == ["models", "models"]


# --- real inotify ------------------------------------------------------------------------------


class Collector:
    """Drains a queue of Changes into a list, for waiting on."""

    def __init__(self, changes: queue.Queue[Change | None]) -> None:
        self.queue = changes
        self.seen: list[Change] = []

    def drain(self) -> list[Change]:
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return self.seen
            assert item is not None
            self.seen.append(item)

    def wait_for(self, *expected: Change, timeout: float = 10.0) -> list[Change]:
        wait_until(lambda: all(e in self.drain() for e in expected), timeout, what=f"{expected}")
        return self.seen


class Live:
    """A RootWatcher on a tmp root, a QueueSink, recorded callbacks."""

    def __init__(
        self,
        root: Path,
        *,
        queue_size: int = 100000,
        ignore: IgnoreRules = IGNORE,
        backend: str = "inotify",
    ):
        root.mkdir(exist_ok=True)
        self.root = root
        self.queue: queue.Queue[Change | None] = queue.Queue(maxsize=queue_size)
        self.overflows: list[str] = []
        self.root_events: list[tuple[str, Kind]] = []
        self.sink = QueueSink(self.queue, self.overflows.append, root_name="r")
        self.watcher = RootWatcher(
            RootConfig(name="r", path=str(root)),
            self.sink,
            ignore,
            on_overflow=self.overflows.append,
            on_root_event=lambda name, kind: self.root_events.append((name, kind)),
            backend=backend,
        )
        self.changes = Collector(self.queue)

    def path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def barrier(self, name: str = "barrier") -> list[Change]:
        """Create a file and wait for it: every event before it has been handled."""
        (self.root / name).touch()
        return self.changes.wait_for(Change(C, self.path(name)))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    made: list[Live] = []

    def make(root: Path | None = None, **kwargs: object) -> Live:
        item = Live(root or tmp_path / "root", **kwargs)  # type: ignore[arg-type]
        made.append(item)
        item.watcher.start()
        return item

    yield make
    for item in made:
        assert item.watcher.stop()


def test_file_changes_arrive(live: Callable[..., Live]) -> None:
    w = live()
    a, b = w.path("a.bin"), w.path("b.bin")
    with open(a, "wb") as f:
        f.write(b"x" * 100)
    w.changes.wait_for(Change(C, a), Change(M, a))
    w.changes.seen.clear()
    with open(a, "ab") as f:
        f.write(b"more")
    w.changes.wait_for(Change(M, a))
    w.changes.seen.clear()
    os.utime(a, ns=(1, 1))  # only IN_ATTRIB: an mtime set without a write
    w.changes.wait_for(Change(M, a))
    os.rename(a, b)
    w.changes.wait_for(Change(MV, a, False, b))
    os.unlink(b)
    w.changes.wait_for(Change(D, b))


def test_directory_changes_and_deletes_inside_subdirectories_arrive(
    live: Callable[..., Live],
) -> None:
    w = live()
    deep = w.root / "sub" / "deeper"
    deep.mkdir(parents=True)
    (deep / "f.bin").write_bytes(b"1")
    w.changes.wait_for(Change(C, w.path("sub"), True), Change(C, w.path("sub/deeper/f.bin")))
    os.unlink(deep / "f.bin")
    w.changes.wait_for(Change(D, w.path("sub/deeper/f.bin")))
    os.rename(w.root / "sub", w.root / "moved")
    w.changes.wait_for(Change(MV, w.path("sub"), True, w.path("moved")))
    (w.root / "moved" / "deeper" / "g.bin").write_bytes(b"2")  # watches followed the move
    w.changes.wait_for(Change(C, w.path("moved/deeper/g.bin")))
    shutil.rmtree(w.root / "moved")
    w.changes.wait_for(
        Change(D, w.path("moved/deeper/g.bin")),
        Change(D, w.path("moved/deeper"), True),
        Change(D, w.path("moved"), True),
    )
    assert w.root_events == [] and w.overflows == []


def test_ignored_paths_are_not_reported(live: Callable[..., Live]) -> None:
    w = live()
    (w.root / "x.tmp").write_bytes(b"1")
    (w.root / "@eaDir").mkdir()
    (w.root / "@eaDir" / "thumb.jpg").write_bytes(b"1")
    seen = w.barrier()
    assert [c for c in seen if "x.tmp" in c.path or "@eaDir" in c.path] == []
    os.rename(w.root / "x.tmp", w.root / "x.bin")
    w.changes.wait_for(Change(C, w.path("x.bin")))
    os.rename(w.root / "x.bin", w.root / "y.part")
    w.changes.wait_for(Change(D, w.path("x.bin")))


def test_a_full_queue_drops_and_flags_the_root_once(live: Callable[..., Live]) -> None:
    w = live(queue_size=2)
    handler = w.watcher.handler
    for i in range(6):
        (w.root / f"f{i}").touch()  # IN_CREATE and IN_CLOSE_WRITE each: 12 events
    wait_until(lambda: handler.events >= 12, what="every event handled")
    assert w.overflows == ["r"]
    assert w.sink.dropped == handler.dropped == handler.events - 2
    w.sink.reset()
    w.changes.drain()
    (w.root / "again").touch()
    w.changes.wait_for(Change(C, w.path("again")))
    assert w.overflows == ["r"]
    for i in range(2):
        (w.root / f"g{i}").touch()
    wait_until(lambda: w.overflows == ["r", "r"], what="flagged again after reset")


def test_root_deleted_is_reported_and_not_listed_as_dead(tmp_path: Path) -> None:
    changes: queue.Queue[Change | None] = queue.Queue()
    events: list[tuple[str, Kind]] = []
    watchers = Watchers(
        sink_for=lambda name: QueueSink(changes, print, root_name=name),
        ignore=IGNORE,
        on_overflow=print,
        on_root_event=lambda name, kind: events.append((name, kind)),
    )
    root = tmp_path / "gone"
    (root / "sub").mkdir(parents=True)
    try:
        assert watchers.start_all([RootConfig(name="gone", path=str(root))]) == {}
        shutil.rmtree(root)
        wait_until(lambda: events == [("gone", D)], what="root event")
        watcher = watchers.get("gone")
        assert watcher is not None
        wait_until(lambda: not watcher.is_alive(), what="emitter ends")
        assert watcher.root_gone and watchers.check() == []
    finally:
        watchers.stop_all()


def test_watchers_start_check_restart_remove(tmp_path: Path) -> None:
    changes: queue.Queue[Change | None] = queue.Queue()
    collector = Collector(changes)
    watchers = Watchers(
        sink_for=lambda name: QueueSink(changes, print, root_name=name),
        ignore=IGNORE,
        on_overflow=print,
        on_root_event=print,
        stop_timeout=5.0,
    )
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    roots = [
        RootConfig(name="a", path=str(a)),
        RootConfig(name="b", path=str(b)),
        RootConfig(name="nfs", path=str(tmp_path / "nfs"), polling=True),
        RootConfig(name="missing", path=str(tmp_path / "missing")),
    ]
    try:
        failed = watchers.start_all(roots)
        assert list(failed) == ["missing"] and not isinstance(failed["missing"], WatchLimitError)
        assert "missing" in str(failed["missing"])
        assert watchers.names == ["a", "b", "missing"]  # polling roots are not watched here
        assert watchers.check() == ["missing"]
        with pytest.raises(ValueError, match="polling"):
            watchers.add(roots[2])

        observer = watchers.get("b").observer  # type: ignore[union-attr]
        assert observer is not None
        observer.stop()  # the observer thread dies under us
        observer.join(5)
        assert watchers.check() == ["b", "missing"]
        watchers.restart("b")
        assert watchers.check() == ["missing"]
        (b / "after-restart").touch()
        collector.wait_for(Change(C, f"{b}/after-restart"))

        assert watchers.remove("missing") and not watchers.remove("missing")
        assert watchers.check() == []
        watchers.stop_all()
        assert watchers.check() == []  # stopped on purpose is not dead
        assert not any(watchers.get(n).is_alive() for n in watchers.names)  # type: ignore[union-attr]
    finally:
        watchers.stop_all()


def _inotify_watches() -> int:
    """inotify watches held by this process (one ``inotify wd:`` line each in fdinfo)."""
    total = 0
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


def test_a_2000_directory_tree_is_watched_whole_without_overflow(
    live: Callable[..., Live], tmp_path: Path
) -> None:
    root = tmp_path / "big"
    for i in range(40):
        for j in range(49):
            (root / f"d{i:02}" / f"e{j:02}").mkdir(parents=True)
    (root / "d39" / "e48" / "last.bin").write_bytes(b"1")
    dirs = count_dirs(str(root))
    assert dirs == 1 + 40 + 40 * 49
    before = _inotify_watches()
    w = live(root)
    assert _inotify_watches() - before == dirs
    os.unlink(root / "d39" / "e48" / "last.bin")
    w.changes.wait_for(Change(D, w.path("d39/e48/last.bin")))
    w.barrier()
    assert w.overflows == [] and w.watcher.overflows == 0


@pytest.mark.slow
def test_a_kernel_queue_overflow_calls_on_overflow(
    live: Callable[..., Live], tmp_path: Path
) -> None:
    """Starve watchdog's reader thread of the GIL while another process makes 18,000 events
    (the kernel queue holds 16,384): the kernel reports IN_Q_OVERFLOW, watchdog rebuilds."""
    configure_logging("json", "error", stream=io.StringIO())
    try:
        w = live()
        # one IN_MODIFY per write; alternating files, so the kernel coalesces none of them
        child = textwrap.dedent(
            """
            import os, sys
            a = os.open(f"{sys.argv[1]}/a", os.O_CREAT | os.O_WRONLY, 0o644)
            b = os.open(f"{sys.argv[1]}/b", os.O_CREAT | os.O_WRONLY, 0o644)
            for i in range(9000):
                os.write(a, b"x")
                os.write(b, b"x")
            """
        )
        run_starving_readers(child, str(w.root), flag=tmp_path / "flag")
        wait_until(lambda: w.overflows, timeout=30, what="overflow reported")
        assert set(w.overflows) == {"r"}
        assert w.watcher.overflows >= 1
        # watchdog rebuilds the watches after an overflow; a file made while it is still doing
        # so can go unseen, so try a few sentinels until one arrives: events flow again
        w.changes.drain()
        seen = False
        for attempt in range(10):
            name = f"after-overflow-{attempt}"
            (w.root / name).touch()
            try:
                w.changes.wait_for(Change(C, w.path(name)), timeout=3)
            except AssertionError:
                continue
            seen = True
            break
        assert seen, "no event arrived after the overflow"
    finally:
        reset_logging()


def test_the_overflow_warning_is_seen_at_any_log_level(live: Callable[..., Live]) -> None:
    """At log level "error" watchdog's logger is held at ERROR; the detector still sees it."""
    configure_logging("json", "error", stream=io.StringIO())
    try:
        w = live()
        logger = logging.getLogger("watchdog.observers.inotify")
        logger.warning(
            "Inotify queue overflowed; reconciling recursive watches below %r",
            os.fsencode(w.root),
        )
        assert w.overflows == ["r"]
        logger.warning("Inotify queue overflowed; reconciling recursive watches below %r", b"/x")
        assert w.overflows == ["r"]  # another path: not this root's
    finally:
        reset_logging()


def test_limit_error_message_names_the_sysctl() -> None:
    err = WatchLimitError("models", 300000, 8192, root_path="/srv/models")
    text = str(err)
    assert "\n" not in text
    assert "fs.inotify.max_user_watches is 8192" in text
    assert "300000 directories under /srv/models" in text
    assert "sysctl fs.inotify.max_user_watches=600000" in text
    assert err.suggested == 600000 and err.exit_code == 1
    small = WatchLimitError("models", 10, 8192)
    assert "sysctl fs.inotify.max_user_watches=524288" in str(small)
    high = WatchLimitError("models", 10, 1_000_000)
    assert "sysctl fs.inotify.max_user_watches=2000000" in str(high)
    inst = WatchLimitError("models", 0, 128, key=INSTANCES_KEY)
    assert "sysctl fs.inotify.max_user_instances=1024" in str(inst)


def _userns_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-Ur", "true"], capture_output=True, check=False)
    return done.returncode == 0


_USERNS_SCRIPT = """
import queue, sys, threading
from assetd.config import RootConfig
from assetd.fsutil import IgnoreRules
from assetd.errors import WatchError
from assetd.live.observers import RootWatcher
from assetd.live.watch import QueueSink
with open(f"/proc/sys/user/max_inotify_{sys.argv[2]}", "w") as f:
    f.write(sys.argv[3])
sink = QueueSink(queue.Queue(), print, root_name="r")
w = RootWatcher(RootConfig(name="r", path=sys.argv[1]), sink, IgnoreRules([]),
                on_overflow=print, on_root_event=print)
try:
    w.start()
    print("started")
    w.stop()
except WatchError as err:
    print(type(err).__name__, err)
print("threads", threading.active_count())
"""


@pytest.mark.parametrize(
    ("limit", "value", "expect"),
    [
        ("watches", "0", "fs.inotify.max_user_watches is 0"),  # the root's own watch fails
        ("watches", "40", "fs.inotify.max_user_watches is 40"),  # a subdirectory's fails
        ("watches", "1000", "started"),
        ("instances", "0", "fs.inotify.max_user_instances is 0"),
    ],
)
def test_inotify_limits_in_a_user_namespace(
    tmp_path: Path, limit: str, value: str, expect: str
) -> None:
    """A child user namespace has its own, lowerable inotify limits: real ENOSPC and EMFILE."""
    if not _userns_available():
        pytest.skip("cannot create a user namespace here (unshare -Ur)")
    root = tmp_path / "root"
    for i in range(20):
        (root / f"d{i}" / "e").mkdir(parents=True)
    done = subprocess.run(
        ["unshare", "-Ur", sys.executable, "-c", _USERNS_SCRIPT, str(root), limit, value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert expect in out
    assert out.rstrip().endswith("threads 1")  # nothing left running after a failed start
    if expect != "started":
        assert "WatchLimitError" in out
        assert f"sysctl fs.inotify.max_user_{limit}=" in out
    if limit == "watches" and expect != "started":
        assert "41 directories" in out


def test_start_failure_is_a_watch_error(tmp_path: Path) -> None:
    sink = QueueSink(queue.Queue(), print, root_name="r")
    for path in (tmp_path / "absent", tmp_path / "file"):
        if path.name == "file":
            path.write_bytes(b"")
        watcher = RootWatcher(
            RootConfig(name="r", path=str(path)),
            sink,
            IGNORE,
            on_overflow=print,
            on_root_event=print,
        )
        with pytest.raises(WatchError):
            watcher.start()
        assert not watcher.is_alive()
        assert watcher.stop()


def test_synthetic_events_are_dropped() -> None:
    from watchdog.events import FileMovedEvent

    h = Handled()
    synthetic = FileMovedEvent(f"{ROOT}/a/f", f"{ROOT}/b/f", is_synthetic=True)
    real = FileMovedEvent(f"{ROOT}/a/g", f"{ROOT}/b/g")
    assert [c.path for c in h(synthetic, real)] == [f"{ROOT}/a/g"]
