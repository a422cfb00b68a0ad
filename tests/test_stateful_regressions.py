"""Plain regression tests for what the model-based test (tests/test_stateful_daemon.py) found,
each the shrunk sequence of a failing example, on the real daemon run as ``nobody``."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetd.live.backend import fanotify_unavailable
from daemon_harness import Daemon, NotifySocket
from helpers import wait_until
from unprivileged import give_to_nobody, nobody


@pytest.fixture
def unprivileged_daemon() -> Iterator[Daemon]:
    """The real daemon as ``nobody`` on one root ``lib`` (not started)."""
    with nobody() as nb:
        lib = nb.base / "lib"
        lib.mkdir()
        daemon = Daemon(
            nb.base, {"lib": lib}, "[api]\nlisten = []\n", command=nb.command, env=nb.env
        )
        daemon.state.mkdir(mode=0o750)
        give_to_nobody(daemon.state)
        daemon.notify = NotifySocket(nb.base / "notify.sock")
        os.chmod(daemon.notify.path, 0o777)
        try:
            yield daemon
        finally:
            for dirpath, dirs, _files in os.walk(lib):
                for d in dirs:
                    os.chmod(os.path.join(dirpath, d), 0o755)
            daemon.close()


def _figures(daemon: Daemon, path: Path) -> tuple[object, ...] | None:
    rows = daemon.query(
        "SELECT size_bytes, mtime_ns, is_missing FROM asset_cache_states WHERE file_path = ?",
        str(path),
    )
    return rows[0] if rows else None


def test_a_file_changed_while_its_directory_was_unreadable_is_caught_up(
    unprivileged_daemon: Daemon,
) -> None:
    """Found by the stateful test: a file overwritten while its directory was at mode 0 kept
    its old size and mtime in the catalog for good (until a reconcile), because the live batch
    could not stat it and nothing looked again once the directory was readable."""
    daemon = unprivileged_daemon
    lib = daemon.roots["lib"]
    sub = lib / "d"
    sub.mkdir()
    f = sub / "f.bin"
    f.write_bytes(b"a")
    old = sub / "old.bin"
    old.write_bytes(b"o")
    daemon.start()
    wait_until(lambda: daemon.is_live(f) and daemon.is_live(old), 15, what="catalogued")
    os.chmod(sub, 0)
    f.write_bytes(b"longer content")
    old.unlink()
    new = sub / "new.bin"
    new.write_bytes(b"n")
    daemon.barrier(lib)  # the daemon saw the events and could not stat the files
    os.chmod(sub, 0o755)
    st = f.stat()
    wait_until(lambda: _figures(daemon, f) == (st.st_size, st.st_mtime_ns, 0), 5, what="caught up")
    assert daemon.stop() == 0


def _two_roots(tmp_path: Path, backend: str) -> tuple[Daemon, Path, Path]:
    r0, r1 = tmp_path / "r0", tmp_path / "r1"
    r0.mkdir()
    r1.mkdir()
    if backend == "fanotify" and (why := fanotify_unavailable(str(r0))) is not None:
        pytest.skip(f"fanotify unavailable here: {why}")
    daemon = Daemon(tmp_path, {"r0": r0, "r1": r1}, "[api]\nlisten = []\n", backend=backend)
    return daemon, r0, r1


def _started(daemon: Daemon) -> None:
    """Started, its start-up reconcile done (a row it seeds may be seeded twice meanwhile)."""
    daemon.start()
    wait_until(
        lambda: any(e.get("event") == "reconcile.finished" for e in daemon.log_events()),
        30,
        what="start-up reconcile finished",
    )


@pytest.mark.parametrize("backend", ["inotify", "fanotify"])
def test_a_file_renamed_to_another_root_keeps_its_row_and_tags(
    tmp_path: Path, backend: str
) -> None:
    """Found by the stateful test (shrunk): a tagged file renamed into another root, then
    saved by an editor before it was hashed again, lost its manual tag to the old path's
    missing row: each root's watch saw one half (a delete, a create). DESIGN §2/§4: a rename
    the kernel reports is a move, across roots too (live/crossroot.py pairs the halves)."""
    daemon, r0, r1 = _two_roots(tmp_path, backend)
    a = r0 / "a.bin"
    a.write_bytes(b"first")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(a), 15, what="a catalogued")
        (row_id,) = daemon.query("SELECT id FROM asset_cache_states WHERE file_path = ?", str(a))[0]
        daemon.add_manual_tag(a, "T")
        b = r1 / "b.bin"
        os.rename(a, b)
        temp = r1 / ".b.bin.new"
        temp.write_bytes(b"edited")  # an editor's save, before any hash could confirm a guess
        os.rename(temp, b)
        daemon.barrier(r0)
        daemon.barrier(r1)
        wait_until(lambda: daemon.is_live(b), 5, what="b catalogued")
        assert daemon.row(b)[2] == row_id  # type: ignore[index]
        assert daemon.row(a) is None
        assert {"T", "r1"} <= daemon.tags(b) and "r0" not in daemon.tags(b)
        assert daemon.stop() == 0
    finally:
        daemon.close()


@pytest.mark.parametrize("backend", ["inotify", "fanotify"])
def test_a_directory_moved_to_another_root_takes_its_rows_and_tags(
    tmp_path: Path, backend: str
) -> None:
    """A directory moved across roots: every row under it moves (the same rows, their tags
    along, the root's automatic tag swapped), nothing is left missing in the old root."""
    daemon, r0, r1 = _two_roots(tmp_path, backend)
    d = r0 / "d"
    (d / "sub").mkdir(parents=True)
    x, y = d / "x.bin", d / "sub" / "y.bin"
    x.write_bytes(b"x")
    y.write_bytes(b"y")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(x) and daemon.is_live(y), 15, what="catalogued")
        ids = {daemon.row(p)[2] for p in (x, y)}  # type: ignore[index]
        daemon.add_manual_tag(y, "T")
        e = r1 / "e"
        os.rename(d, e)
        (e / "sub" / "y.bin").write_bytes(b"edited")  # before any hash could confirm a guess
        daemon.barrier(r0)
        daemon.barrier(r1)
        x2, y2 = e / "x.bin", e / "sub" / "y.bin"
        wait_until(lambda: daemon.is_live(x2) and daemon.is_live(y2), 5, what="moved rows")
        assert {daemon.row(p)[2] for p in (x2, y2)} == ids  # type: ignore[index]
        assert daemon.row(x) is None and daemon.row(y) is None
        assert {"T", "r1"} <= daemon.tags(y2) and "r0" not in daemon.tags(y2)
        assert daemon.stop() == 0
    finally:
        daemon.close()


@pytest.mark.parametrize("backend", ["inotify", "fanotify"])
def test_a_directory_moved_back_from_one_that_left_the_root_lands_where_it_is(
    tmp_path: Path, backend: str
) -> None:
    """Example 455 of a 500-example stateful run (shrunk): ``mv r0/a/b r1/b; mv r0/a r0/z;
    mv r1/b/c r0/z/c2`` at once. r0's watches on ``b`` outlive its move out until the read
    ends, and r0's rename of ``a`` rewrote their paths to ``r0/z/b``: r0 read the third move
    as ``r0/z/b/c -> r0/z/c2``, both ends its own, and r1's half had no partner. The row of
    ``f.bin`` (moved to ``r1/b/c`` by the first move) was left missing there and a new row
    made at ``r0/z/c2``: its metadata on a row of a path the file had left."""
    daemon, r0, r1 = _two_roots(tmp_path, backend)
    (r0 / "a" / "b" / "c").mkdir(parents=True)
    f = r0 / "a" / "b" / "c" / "f.bin"
    f.write_bytes(b"f")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(f), 15, what="f catalogued")
        (row_id,) = daemon.query("SELECT id FROM asset_cache_states WHERE file_path = ?", str(f))[0]
        daemon.add_manual_tag(f, "T")
        os.rename(r0 / "a" / "b", r1 / "b")
        os.rename(r0 / "a", r0 / "z")
        os.rename(r1 / "b" / "c", r0 / "z" / "c2")
        daemon.barrier(r0)
        daemon.barrier(r1)
        there = r0 / "z" / "c2" / "f.bin"
        wait_until(lambda: daemon.is_live(there), 5, what="f at r0/z/c2")
        rows = daemon.query("SELECT file_path, is_missing FROM asset_cache_states ORDER BY 1")
        assert [r for r in rows if ".barrier" not in str(r[0])] == [(str(there), 0)]
        assert daemon.row(there)[2] == row_id  # type: ignore[index]
        assert "T" in daemon.tags(there)
        assert daemon.stop() == 0
    finally:
        daemon.close()


def _hashed(daemon: Daemon, path: Path) -> bool:
    rows = daemon.query(
        "SELECT a.hash, c.needs_verify FROM asset_cache_states c "
        "JOIN assets a ON a.id = c.asset_id WHERE c.file_path = ? AND c.is_missing = 0",
        str(path),
    )
    return bool(rows) and rows[0][0] is not None and rows[0][1] == 0


@pytest.fixture
def private_ext4(tmp_path: Path) -> Iterator[Path]:
    """A small ext4 filesystem of its own (a loop mount): no other process takes the inode a
    test frees before the test's next file gets it. Falls back to ``tmp_path`` (a shared
    filesystem: the test may then need more tries) when it cannot be made."""
    image, target = tmp_path / "ext4.img", tmp_path / "ext4"
    target.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, check=False)
    mounted = (
        not made.returncode
        and not subprocess.run(
            ["mount", "-o", "loop", str(image), str(target)], capture_output=True, check=False
        ).returncode
    )
    yield target if mounted else tmp_path
    if mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.parametrize("same_content", [False, True], ids=["other-content", "same-content"])
def test_a_renamed_then_deleted_file_and_a_new_one_on_its_inode_in_one_batch(
    tmp_path: Path, private_ext4: Path, same_content: bool
) -> None:
    """Example 440 of a 500-example stateful run: ``mv f3 f8.bin; rm f8.bin; create f3`` in
    one live batch, the new f3 on f8.bin's reused inode with the same size and mtime_ns. The
    vanished f8.bin and the new f3 pair as a guessed move (content-rules.md rule 8): the
    hasher decides. Other content: nothing moves, the tag stays on f8.bin's missing row. Same
    content: the move is confirmed, the tag is on f3 and f8.bin's row goes."""
    lib = private_ext4 / "lib"
    lib.mkdir()
    daemon = Daemon(tmp_path, {"lib": lib}, "[api]\nlisten = []\n", min_quiet_ms=200)
    try:
        daemon.start()
        for attempt in range(8):  # ext4 gives the freed inode to the next file, unless another
            new, f8 = _rename_delete_recreate(daemon, lib / f"try{attempt}", same_content)
            if new is not None:  # process on the machine took it first: try again elsewhere
                f3, tag = new, f"T-try{attempt}"
                break
        else:
            pytest.skip("this filesystem never gave the freed inode to the new file (ext4 does)")
        daemon.barrier(lib)
        wait_until(lambda: _hashed(daemon, f3), 30, what="the new f3 hashed")
        batches = [e for e in daemon.log_events() if e.get("event") == "batch.applied"]
        # the rename, the delete and the create in one batch, the two ends paired as a guess
        assert any(b["moved"] == 1 and b["candidates"] == 1 for b in batches), batches
        if same_content:  # confirmed: f8.bin's row goes, its metadata is on f3
            assert tag in daemon.tags(f3)
            assert daemon.row(f8) is None
            how = daemon.query("SELECT how FROM asset_moves WHERE from_path = ?", str(f8))
            assert how == [("hash",)]
        else:  # refuted: nothing moves
            assert tag not in daemon.tags(f3)
            assert daemon.is_missing(f8) and tag in daemon.tags(f8)
        assert daemon.stop() == 0
    finally:
        daemon.close()


def _rename_delete_recreate(
    daemon: Daemon, top: Path, same_content: bool
) -> tuple[Path | None, Path]:
    """``top/d/f3`` catalogued, hashed and tagged ``T-<top's name>``, then at once
    ``mv d/f3 f8.bin; rm f8.bin`` and a new ``d/f3`` with f3's size and mtime_ns; the new f3,
    or None when it did not get the freed inode."""
    (top / "d").mkdir(parents=True)
    f3, f8 = top / "d" / "f3", top / "f8.bin"
    content = f"same {top.name}".encode()  # each try its own content: no dedupe between them
    f3.write_bytes(content)
    wait_until(lambda: _hashed(daemon, f3), 30, what="f3 hashed")
    daemon.add_manual_tag(f3, f"T-{top.name}")
    before = f3.stat()
    os.rename(f3, f8)
    f8.unlink()
    f3.write_bytes(content if same_content else content.replace(b"same", b"diff"))
    os.utime(f3, ns=(before.st_atime_ns, before.st_mtime_ns))
    return (f3 if f3.stat().st_ino == before.st_ino else None), f8


def test_a_directory_unreadable_when_watched_is_watched_once_readable(
    unprivileged_daemon: Daemon,
) -> None:
    """A directory at mode 0 when the daemon walks the root cannot be watched (inotify needs
    read access). Once it is readable again its chmod makes the daemon look at it; changes made
    in it afterwards must be seen live too, not only by the next reconcile."""
    daemon = unprivileged_daemon
    lib = daemon.roots["lib"]
    sub = lib / "d"
    sub.mkdir()
    old = sub / "old.bin"
    old.write_bytes(b"o")
    os.chmod(sub, 0)
    daemon.start()
    daemon.barrier(lib)
    os.chmod(sub, 0o755)
    wait_until(lambda: daemon.is_live(old), 15, what="old.bin catalogued once readable")
    new = sub / "new.bin"
    new.write_bytes(b"n")
    old.rename(sub / "old.tmp")  # renamed to an ignored name: a delete for the daemon
    daemon.barrier(lib)
    wait_until(lambda: daemon.is_live(new), 5, what="new.bin seen live")
    wait_until(lambda: daemon.is_missing(old), 5, what="old.bin seen gone")
    assert daemon.stop() == 0


@pytest.mark.parametrize("across", [False, True], ids=["one-root", "across-roots"])
def test_mv_onto_then_rename_in_one_batch_keeps_the_tags_of_both(
    tmp_path: Path, across: bool
) -> None:
    """Found by the 500-example stateful run (example 38): ``mv y x; mv x z`` in one live
    batch. ``mv y x`` is an edit of x (content-rules.md rule 7: x keeps its row and tags and
    gains y's), and ``mv x z`` takes that row to z: both files' tags must be on z."""
    r0, r1 = tmp_path / "r0", tmp_path / "r1"
    r0.mkdir()
    r1.mkdir()
    x, y, z = r0 / "x", (r1 if across else r0) / "y.bin", r0 / "z"
    x.write_bytes(b"xx")
    y.write_bytes(b"yyy")
    daemon = Daemon(tmp_path, {"r0": r0, "r1": r1}, "[api]\nlisten = []\n", min_quiet_ms=200)
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(x) and daemon.is_live(y), 15, what="catalogued")
        daemon.add_manual_tag(x, "X")
        daemon.add_manual_tag(y, "Y")
        os.rename(y, x)
        os.rename(x, z)
        daemon.barrier(r0)
        daemon.barrier(r1)
        wait_until(lambda: daemon.is_live(z), 5, what="z catalogued")
        assert {"X", "Y"} <= daemon.tags(z)
        assert daemon.row(x) is None and daemon.row(y) is None
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_file_changed_at_once_in_a_directory_moved_to_another_root_is_seen(
    tmp_path: Path,
) -> None:
    """Found by the 500-example run (example 81): a directory moved to another root is watched
    there only once that root's emitter reads the move; a file written in it before that has
    no event. The move must be followed by a look at the directory (as a directory moved in
    from outside is listed), or the row keeps its old figures."""
    daemon, r0, r1 = _two_roots(tmp_path, "inotify")
    d = r0 / "d"
    d.mkdir()
    x = d / "x.bin"
    x.write_bytes(b"x")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(x), 15, what="x catalogued")
        e = r1 / "e"
        os.rename(d, e)
        (e / "x.bin").write_bytes(b"longer")  # before r1's watch on e can exist
        daemon.barrier(r0)
        daemon.barrier(r1)
        st = (e / "x.bin").stat()
        wait_until(
            lambda: _figures(daemon, e / "x.bin") == (st.st_size, st.st_mtime_ns, 0),
            5,
            what="x.bin's new figures",
        )
        assert daemon.row(x) is None
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_directory_moved_into_one_just_moved_to_another_root_lands_where_it_is(
    tmp_path: Path,
) -> None:
    """Found by the 500-example run (run 6, example 36): ``mv r0/d r1/e`` then at once
    ``mv r1/x r1/e/x``. Until r0's emitter drops its watches on d, the kernel reports the
    second move's arrival to r0 too, under d's old path, with the same cookie: that stale
    half must not win the pair (the rows would go to ``r0/d/x``, a path no file ever had)."""
    daemon, r0, r1 = _two_roots(tmp_path, "inotify")
    d, x = r0 / "d", r1 / "x"
    (d / "sub").mkdir(parents=True)
    (x / "in").mkdir(parents=True)
    f = x / "in" / "f.bin"
    f.write_bytes(b"f")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(f), 15, what="f catalogued")
        e = r1 / "e"
        os.rename(d, e)
        os.rename(x, e / "sub" / "x")  # r0 still watches d: it reads this arrival too
        daemon.barrier(r0)
        daemon.barrier(r1)
        moved = e / "sub" / "x" / "in" / "f.bin"
        wait_until(lambda: daemon.is_live(moved), 5, what="f.bin catalogued where it is")
        stray = daemon.query(
            "SELECT file_path FROM asset_cache_states WHERE file_path LIKE ?", f"{r0}/%"
        )
        assert [p for (p,) in stray if "zz" not in str(p) and ".barrier" not in str(p)] == []
        assert daemon.stop() == 0
    finally:
        daemon.close()


@pytest.mark.parametrize("what", ["directory", "file"])
def test_a_row_a_reconcile_marked_missing_just_before_its_move_is_live_after_it(
    tmp_path: Path, what: str
) -> None:
    """Example 299 of the second 500-example run (flaky: a race): ``mv r1/d0 r1/d15`` while a
    SIGUSR1 reconcile ran. The reconcile re-stat'ed ``r1/d0/d1/f0`` after the rename and before
    the live batch that moves ``d0``'s rows had committed, and marked it missing (true then);
    the batch then moved the missing row to ``r1/d15/d1/f0``, where the file is, and it stayed
    missing. The race's outcome is set here by plain SQL, as another program could; a file's
    own rename meets the same race."""
    lib = tmp_path / "lib"
    (lib / "d" / "sub").mkdir(parents=True)
    f = lib / "d" / "sub" / "f.bin"
    f.write_bytes(b"f")
    gone = lib / "d" / "gone.bin"
    gone.write_bytes(b"g")
    daemon = Daemon(tmp_path, {"lib": lib}, "[api]\nlisten = []\n")
    try:
        _started(daemon)
        wait_until(lambda: daemon.is_live(f) and daemon.is_live(gone), 15, what="catalogued")
        gone.unlink()
        wait_until(lambda: daemon.is_missing(gone), 5, what="gone.bin missing")
        conn = sqlite3.connect(daemon.db, timeout=10)
        with conn:
            conn.execute(
                "UPDATE asset_cache_states SET is_missing = 1 WHERE file_path = ?", (str(f),)
            )
        conn.close()
        if what == "directory":
            os.rename(lib / "d", lib / "e")
            moved = lib / "e" / "sub" / "f.bin"
        else:
            moved = lib / "d" / "sub" / "g.bin"
            os.rename(f, moved)
        daemon.barrier(lib)
        wait_until(lambda: daemon.is_live(moved), 5, what="f live at its new path")
        if what == "directory":  # a missing row whose file is gone moves with it, missing
            assert daemon.is_missing(lib / "e" / "gone.bin") and daemon.row(gone) is None
        assert daemon.stop() == 0
    finally:
        daemon.close()
