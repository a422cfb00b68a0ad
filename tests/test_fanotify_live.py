"""The fanotify backend on the real kernel: the core live cases of test_watch.py on it, and the
cases inotify gets wrong or cannot do (skipped with the reason where fanotify is unavailable)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import test_watch
from assetd.fsutil import IgnoreRules
from assetd.live import fanotify_sys as fsys
from assetd.live.backend import fanotify_unavailable
from assetd.live.changes import Change, Kind
from assetd.live.fanotify_emitter import group_count
from helpers import wait_until
from test_watch import Live

C, D, M, MV = Kind.CREATED, Kind.DELETED, Kind.MODIFIED, Kind.MOVED


def _why_not(path: str) -> str | None:
    return fanotify_unavailable(path)


@pytest.fixture
def fan(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    why = _why_not(str(tmp_path))
    if why is not None:
        pytest.skip(f"fanotify unavailable here: {why}")
    made: list[Live] = []

    def make(root: Path | None = None, **kwargs: object) -> Live:
        item = Live(root or tmp_path / "root", backend="fanotify", **kwargs)  # type: ignore[arg-type]
        made.append(item)
        item.watcher.start()
        return item

    yield make
    for item in made:
        assert item.watcher.stop()
    assert group_count() == 0


def test_file_changes_arrive(fan: Callable[..., Live]) -> None:
    test_watch.test_file_changes_arrive(fan)


def test_directory_changes_and_deletes_inside_subdirectories_arrive(
    fan: Callable[..., Live],
) -> None:
    test_watch.test_directory_changes_and_deletes_inside_subdirectories_arrive(fan)


def test_ignored_paths_are_not_reported(fan: Callable[..., Live]) -> None:
    test_watch.test_ignored_paths_are_not_reported(fan)


def test_root_deleted_is_reported(fan: Callable[..., Live]) -> None:
    w = fan()
    assert w.watcher.backend == "fanotify" and group_count() == 1
    shutil.rmtree(w.root)
    wait_until(lambda: w.root_events == [("r", D)], what="root deletion")


def _group(w: Live) -> object:
    observer = w.watcher.observer
    assert observer is not None
    emitter = next(iter(observer.emitters))
    return emitter._group  # type: ignore[attr-defined]


def test_a_directory_created_and_filled_at_once_is_complete(fan: Callable[..., Live]) -> None:
    w = fan()
    names = [f"new/sub/f{i}.bin" for i in range(200)]
    os.makedirs(w.root / "new" / "sub")
    for name in names:
        (w.root / name).write_bytes(b"x")  # within the same millisecond as the mkdir
    w.changes.wait_for(*(Change(C, w.path(n)) for n in names))
    assert Change(C, w.path("new"), True) in w.changes.seen


def test_renaming_a_directory_of_10000_entries_is_one_move(fan: Callable[..., Live]) -> None:
    w = fan()
    w.watcher.stop()  # made unseen: 10,000 creations would only cost time here
    big = w.root / "big"
    big.mkdir()
    for i in range(10_000):
        os.close(os.open(big / f"{i:05}", os.O_CREAT | os.O_WRONLY, 0o644))
    w.watcher.start()
    os.rename(big, w.root / "renamed")
    (w.root / "renamed" / "after.bin").touch()
    seen = w.changes.wait_for(
        Change(MV, w.path("big"), True, w.path("renamed")), Change(C, w.path("renamed/after.bin"))
    )
    assert [c for c in seen if c.kind is MV] == [Change(MV, w.path("big"), True, w.path("renamed"))]


def test_directories_seen_before_the_start_follow_renames(fan: Callable[..., Live]) -> None:
    """Directories the tree never saw created are looked up by handle, then kept by renames."""
    w = fan()
    w.watcher.stop()
    (w.root / "a" / "b" / "c").mkdir(parents=True)
    w.watcher.start()
    (w.root / "a" / "b" / "c" / "1.bin").touch()  # a/b/c looked up: an anchor
    w.changes.wait_for(Change(C, w.path("a/b/c/1.bin")))
    os.rename(w.root / "a", w.root / "z")  # a: never seen either
    (w.root / "z" / "b" / "c" / "2.bin").touch()
    w.changes.wait_for(Change(MV, w.path("a"), True, w.path("z")), Change(C, w.path("z/b/c/2.bin")))
    os.rename(w.root / "z" / "b", w.root / "y")
    (w.root / "y" / "c" / "3.bin").touch()
    w.changes.wait_for(Change(C, w.path("y/c/3.bin")))


def test_events_read_after_their_directory_is_gone_never_get_a_wrong_path(
    fan: Callable[..., Live],
) -> None:
    """The reader is held while a directory is filled, renamed and deleted: every event it then
    reads names the path the entry had, found through the deletion and rename events."""
    w = fan()
    w.watcher.stop()
    (w.root / "old" / "deep").mkdir(parents=True)
    w.watcher.start()
    group = _group(w)
    with group._lock:  # type: ignore[attr-defined]
        (w.root / "old" / "deep" / "f.bin").write_bytes(b"1")
        os.rename(w.root / "old", w.root / "gone")
        shutil.rmtree(w.root / "gone")
    seen = w.changes.wait_for(  # the kernel merged f.bin's creation and deletion: one event
        Change(C, w.path("old/deep/f.bin")),
        Change(D, w.path("old/deep/f.bin")),
        Change(MV, w.path("old"), True, w.path("gone")),
        Change(D, w.path("gone/deep"), True),
        Change(D, w.path("gone"), True),
    )
    assert len([c for c in seen if c.kind is not M]) == 5
    assert w.overflows == []


def test_a_move_through_a_directory_renamed_later_in_the_same_read_keeps_its_paths_of_then(
    fan: Callable[..., Live],
) -> None:
    """``y`` is looked up after the read (``z/y``): the move of ``a.bin`` is taken back through
    the later rename of ``x`` to the paths it had, and keeps its place before that rename (it
    was split into a deletion and a creation at the paths of now)."""
    w = fan()
    w.watcher.stop()
    (w.root / "x" / "y").mkdir(parents=True)
    (w.root / "x" / "y" / "a.bin").touch()
    w.watcher.start()
    group = _group(w)
    with group._lock:  # type: ignore[attr-defined]
        os.rename(w.root / "x" / "y" / "a.bin", w.root / "x" / "y" / "b.bin")
        os.rename(w.root / "x", w.root / "z")
    seen = w.changes.wait_for(Change(MV, w.path("x"), True, w.path("z")))
    moves = [c for c in seen if c.kind is MV]
    assert moves == [
        Change(MV, w.path("x/y/a.bin"), False, w.path("x/y/b.bin")),
        Change(MV, w.path("x"), True, w.path("z")),
    ]


def test_two_roots_on_one_filesystem_share_one_group(
    fan: Callable[..., Live], tmp_path: Path
) -> None:
    a, b = fan(tmp_path / "a"), fan(tmp_path / "b")
    assert group_count() == 1
    (a.root / "m.bin").write_bytes(b"1")
    a.changes.wait_for(Change(C, a.path("m.bin")))
    os.rename(a.root / "m.bin", b.root / "m.bin")
    a.changes.wait_for(Change(D, a.path("m.bin")))
    b.changes.wait_for(Change(C, b.path("m.bin")))
    (tmp_path / "outside.bin").touch()
    b.barrier()
    assert not [c for c in b.changes.seen if "outside" in c.path]


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    mounts: list[Path] = []

    def mount(*args: str) -> Path:
        target = Path(args[-1])
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.skip(f"mount {' '.join(args)}: {done.stderr.strip()}")
        mounts.append(target)
        return target

    yield mount
    for target in reversed(mounts):
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_bind_mounted_root(
    fan: Callable[..., Live], mounted: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    root = mounted("--bind", str(tmp_path / "real"), str(tmp_path / "bound"))
    w = fan(root)
    (tmp_path / "real" / "sub" / "via-real.bin").touch()  # the same files, by the other path
    (root / "sub" / "via-bind.bin").touch()
    w.changes.wait_for(Change(C, w.path("sub/via-real.bin")), Change(C, w.path("sub/via-bind.bin")))
    (tmp_path / "not-in-bind.bin").touch()
    w.barrier()
    assert all(c.path.startswith(str(root) + "/") for c in w.changes.seen)


def test_a_root_on_tmpfs(
    fan: Callable[..., Live], mounted: Callable[..., Path], tmp_path: Path
) -> None:
    root = mounted("-t", "tmpfs", "-o", "size=16m", "none", str(tmp_path / "tmpfs"))
    why = fanotify_unavailable(str(root))
    if why is not None:  # the fallback: the backend says why; inotify watches it
        from assetd.live.backend import choose_backend

        assert choose_backend("auto", str(root)) == ("inotify", why)
        return
    w = fan(root)
    (root / "d").mkdir()
    (root / "d" / "f.bin").write_bytes(b"1")
    os.rename(root / "d", root / "e")
    w.changes.wait_for(Change(C, w.path("d/f.bin")), Change(MV, w.path("d"), True, w.path("e")))


def test_ignored_directories_are_dropped_before_the_queue(fan: Callable[..., Live]) -> None:
    w = fan(ignore=IgnoreRules(["@eaDir"]))
    (w.root / "@eaDir" / "x").mkdir(parents=True)
    (w.root / "@eaDir" / "x" / "thumb.jpg").touch()
    w.barrier()
    assert not [c for c in w.changes.seen if "@eaDir" in c.path]
    # only the barrier reached the handler: its create, and its close-write unless that comes
    # in a later read than the create the barrier waits for; the ignored entries' events (two
    # mkdirs, a create, a close) come before the barrier's in kernel order and would make it 5+
    assert 1 <= w.watcher.handler.events <= 2


def test_a_file_move_in_a_known_directory_stays_a_move_beside_a_directory_rename(
    fan: Callable[..., Live], tmp_path: Path
) -> None:
    """Regression: a read that looked up any directory (here one outside the root, as a busy
    filesystem always has) split every move before a directory rename into delete + create,
    and the renamed file lost its tags (test_renames_keep_tags_at_once[fanotify])."""
    elsewhere = tmp_path / "elsewhere" / "never-seen"
    elsewhere.mkdir(parents=True)
    w = fan()
    (w.root / "dir").mkdir()
    (w.root / "b.bin").touch()
    w.changes.wait_for(Change(C, w.path("dir"), True), Change(C, w.path("b.bin")))
    group = _group(w)
    with group._lock:  # type: ignore[attr-defined]
        (elsewhere / "noise").touch()  # looked up in this read: outside the root
        os.rename(w.root / "b.bin", w.root / "c.bin")
        os.rename(w.root / "dir", w.root / "moved")
    w.changes.wait_for(
        Change(MV, w.path("b.bin"), False, w.path("c.bin")),
        Change(MV, w.path("dir"), True, w.path("moved")),
    )


def test_a_failed_reader_ends_the_observer_and_a_restart_watches_again(
    fan: Callable[..., Live], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = fan()
    group = _group(w)

    def broken(events: object) -> None:
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(group, "_apply", broken)
    (w.root / "lost.bin").touch()
    wait_until(lambda: not w.watcher.is_alive(), what="the observer ends with its group")
    w.watcher.restart()  # what the service does (with backoff), then it reconciles the root
    (w.root / "after.bin").touch()
    w.changes.wait_for(Change(C, w.path("after.bin")))


def test_a_directory_moved_in_from_outside_is_followed_below(
    fan: Callable[..., Live], tmp_path: Path
) -> None:
    """Directories first seen outside the root (their events dropped) are looked up again once
    a move brings them in: later changes below them are not dropped as outside."""
    w = fan()
    staging = tmp_path / "staging"
    (staging / "deep").mkdir(parents=True)
    (staging / "deep" / "early.bin").touch()  # seen outside: dropped
    w.barrier("b1")
    os.rename(staging, w.root / "arrived")
    (w.root / "arrived" / "deep" / "late.bin").touch()
    w.changes.wait_for(
        Change(C, w.path("arrived"), True), Change(C, w.path("arrived/deep/late.bin"))
    )


def test_a_directory_chmod_is_a_look_again(fan: Callable[..., Live]) -> None:
    """A directory's FAN_ATTRIB (chmod, e.g. made readable again) is a DirAttribEvent, as on the
    inotify backends: the handler turns it into a look-again below it (issue 12's stateful-test
    fix; its daemon test runs unprivileged, so only on inotify). Before: dropped (name ".")."""
    w = fan()
    w.watcher.stop()
    (w.root / "d" / "e").mkdir(parents=True)  # never seen created: looked up by handle
    w.watcher.start()
    os.chmod(w.root / "d" / "e", 0)
    os.chmod(w.root / "d" / "e", 0o755)
    w.changes.wait_for(Change(C, w.path("d/e"), True))
    assert w.overflows == []


def test_a_directory_outside_the_roots_is_looked_up_once(
    fan: Callable[..., Live], tmp_path: Path
) -> None:
    """Other processes' changes on the root's filesystem: the directory they are in is looked
    up once, and its later events are dropped while the buffer is parsed."""
    w = fan()
    group = _group(w)
    other = tmp_path / "other"
    other.mkdir()
    (other / "first").touch()
    w.barrier("b0")
    key = fsys.handle_key(str(other))
    assert key in group._tree.outside_keys  # type: ignore[attr-defined]
    tree = group._tree  # type: ignore[attr-defined]
    looked_up: list[bytes] = []
    lookup = tree._lookup

    def counted(handle: bytes) -> str | None:
        looked_up.append(handle)
        return lookup(handle)  # type: ignore[no-any-return]

    tree._lookup = counted  # (other processes' directories on this filesystem count elsewhere)
    dropped = group._filter.dropped  # type: ignore[attr-defined]
    for round_ in range(3):
        for i in range(20):
            (other / f"f{round_}-{i}").touch()
            (other / f"f{round_}-{i}").unlink()
        w.barrier(f"b{round_ + 1}")
    assert key not in looked_up
    # at least one per file (the kernel may merge a file's events into one); a read that holds
    # another process's directory rename keeps everything after it: not all 60 are asserted
    assert group._filter.dropped - dropped >= 20  # type: ignore[attr-defined]
    assert not [c for c in w.changes.seen if "other" in c.path]
