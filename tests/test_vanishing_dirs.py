"""A directory that vanishes, turns into a file or turns unreadable during a walk never kills
anything: the walk, reconcile, the live worker, `scan` and the real daemon (issue 9, A)."""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import SessionFactory
from assetd.live.changes import Batch
from assetd.live.worker import Worker
from assetd.reconcile import reconcile_subtree, sync_cache_states_with_filesystem
from assetd.walk import WalkProblem, list_files_recursively
from catalog_world import World, make_world
from daemon_harness import Daemon
from helpers import wait_until

ScandirFn = Callable[[str], AbstractContextManager[Iterator["os.DirEntry[str]"]]]


def _sabotage(target: Path, then: Callable[[], None]) -> ScandirFn:
    """A scandir that runs ``then`` just before listing ``target`` (once): the directory was
    stat'ed by the walk a moment ago and is gone (or changed) by the time it is listed."""
    done: list[bool] = []

    def scandir(path: str) -> AbstractContextManager[Iterator[os.DirEntry[str]]]:
        if path == str(target) and not done:
            done.append(True)
            then()
        return os.scandir(path)

    return scandir


def _live_paths(world: World) -> set[str]:
    with world.sessions() as s:
        rows = s.execute(
            text("SELECT file_path FROM asset_cache_states WHERE is_missing = :f AND root_id = :r"),
            {"f": False, "r": world.root.id},
        ).all()
    return {r[0] for r in rows}


def _disk_files(top: Path) -> set[str]:
    return {
        os.path.join(d, f) for d, _, files in os.walk(top) for f in files if not f.endswith(".tmp")
    }


# --- the walk --------------------------------------------------------------------------------


def test_walk_top_removed_between_stat_and_scandir_raises_at_the_call(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub/f").write_bytes(b"x")
    seam = _sabotage(top, lambda: shutil.rmtree(top))
    with pytest.raises(FileNotFoundError):
        list_files_recursively(str(top), scandir=seam)  # not later, from inside the iterator


def test_walk_top_replaced_by_a_file_raises_at_the_call(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()

    def replace() -> None:
        top.rmdir()
        top.write_bytes(b"now a file")

    with pytest.raises(NotADirectoryError):
        list_files_recursively(str(top), scandir=_sabotage(top, replace))


def test_walk_subdirectory_removed_between_stat_and_scandir_is_reported(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "a/deep").mkdir(parents=True)
    (top / "a/deep/f").write_bytes(b"x")
    (top / "b").write_bytes(b"y")
    problems: list[WalkProblem] = []
    seam = _sabotage(top / "a", lambda: shutil.rmtree(top / "a"))
    files = [
        f.path for f in list_files_recursively(str(top), scandir=seam, on_problem=problems.append)
    ]
    assert files == [str(top / "b")]
    assert [(p.path, p.kind) for p in problems] == [(str(top / "a"), "vanished")]


# --- reconcile and the live worker, with the seam -----------------------------------------


def test_subtree_reconcile_of_a_directory_removed_mid_walk(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    kept = world.write("keep/k")
    for rel in ("d/x", "d/e/y", "d/e/f/z"):
        world.write(rel)
    world.scan()
    d = world.dir / "d"
    with world.sessions() as s:
        sub = reconcile_subtree(
            s, world.root, str(d), scandir=_sabotage(d, lambda: shutil.rmtree(d))
        )
    assert sub.missing == 3
    assert _live_paths(world) == {str(kept)}


def test_subtree_reconcile_of_a_directory_replaced_by_a_file_mid_walk(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    for rel in ("d/x", "d/e/y"):
        world.write(rel)
    world.scan()
    d = world.dir / "d"

    def replace() -> None:
        shutil.rmtree(d)
        d.write_bytes(b"a file now")

    with world.sessions() as s:
        reconcile_subtree(s, world.root, str(d), scandir=_sabotage(d, replace))
    assert _live_paths(world) == {str(d)}  # the rows follow the disk: the file is catalogued


def test_reconcile_of_a_subdirectory_replaced_by_a_file_mid_walk(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    for rel in ("a", "d/x", "d/e/y", "z"):
        world.write(rel)
    world.scan()
    d = world.dir / "d"

    def replace() -> None:
        shutil.rmtree(d)
        d.write_bytes(b"a file now")

    with world.sessions() as s:
        sync_cache_states_with_filesystem(s, [world.root], scandir=_sabotage(d, replace))
    assert _live_paths(world) == _disk_files(world.dir) == {str(world.dir / n) for n in "adz"}


def test_reconcile_of_a_root_removed_mid_walk_marks_it_unavailable(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    world.write("a/b")
    world.write("c")
    world.scan()
    seam = _sabotage(world.dir, lambda: shutil.rmtree(world.dir))
    with world.sessions() as s:
        result = sync_cache_states_with_filesystem(s, [world.root], scandir=seam)
    assert result.unavailable == [world.root.name]
    assert _live_paths(world) == set()
    with world.sessions() as s:
        reasons = set(
            s.execute(text("SELECT DISTINCT state_reason FROM asset_cache_states")).scalars()
        )
    assert reasons == {"root-unavailable"}


def test_worker_batch_whose_directory_vanishes_mid_walk(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """The live path: a created directory is listed by a subtree reconcile; it is removed
    between the walk's stat and its scandir. The batch applies; nothing is left live."""
    world = make_world(sessions, tmp_path / "lib")
    d = world.dir / "new"
    world.write("new/a")
    world.write("new/sub/b")
    worker = Worker(world.sessions, [world.root], scandir=_sabotage(d, lambda: shutil.rmtree(d)))
    worker.apply(Batch(touched=frozenset({str(d)}), size=1))
    assert _live_paths(world) == set()


# --- the real thing: churn ----------------------------------------------------------------


def _churn(root: Path, seconds: float, seed: int) -> int:
    """Create nested directories with files and remove them 0-120 ms later, for ``seconds``;
    sometimes a directory is replaced by a file. Returns how many trees were made."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    n = 0
    while time.monotonic() < deadline:
        n += 1
        top = root / f"t{n % 7}"
        deep = top / "a" / "b" / "c"
        deep.mkdir(parents=True, exist_ok=True)
        for d in (top, top / "a", top / "a" / "b", deep):
            for i in range(3):
                (d / f"f{i}").write_bytes(b"x")
        pause.wait(rng.uniform(0.0, 0.12))  # the workload's pace, not a wait for an event
        shutil.rmtree(top, ignore_errors=True)
        if rng.random() < 0.2:
            top.write_bytes(b"was a directory")
            pause.wait(rng.uniform(0.0, 0.03))
            top.unlink()
    return n


@pytest.mark.slow
def test_churn_of_nested_directories_never_kills_the_daemon(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "stays").write_bytes(b"s")
    daemon = Daemon(tmp_path, {"lib": lib})
    try:
        daemon.start()
        wait_until(lambda: daemon.is_live(lib / "stays"), 15, what="start-up reconcile")
        trees = _churn(lib, 10.0, seed=9)
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log_text()[-3000:]
        daemon.barrier(lib)
        on_disk = _disk_files(lib)

        def catalog_equals_disk() -> bool:
            rows = daemon.query("SELECT file_path FROM asset_cache_states WHERE is_missing = 0")
            return {str(r[0]) for r in rows} == on_disk

        try:
            wait_until(catalog_equals_disk, 15, what="catalog equals disk after the churn")
        except AssertionError:
            rows = daemon.query("SELECT file_path FROM asset_cache_states WHERE is_missing = 0")
            live = {str(r[0]) for r in rows}
            print(
                "ONLY LIVE", sorted(live - on_disk)[:20], "ONLY DISK", sorted(on_disk - live)[:20]
            )
            raise
        assert daemon.proc.poll() is None
        events = [e.get("event") for e in daemon.log_events()]
        assert "pipeline.crashed" not in events and "daemon.failed" not in events
        assert trees > 20
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_scan_while_directories_churn(sessions: SessionFactory, tmp_path: Path) -> None:
    """`scan` (the same reconcile, with no watcher behind it) over a root whose directories
    come and go while it walks: every pass finishes, and a pass after the churn equals the disk."""
    world = make_world(sessions, tmp_path / "lib")
    world.write("stays")
    stop = threading.Event()
    churner = threading.Thread(target=lambda: _churn(world.dir, 3.0, seed=3), daemon=True)
    churner.start()
    passes = 0
    while churner.is_alive():
        world.scan()
        passes += 1
    stop.set()
    churner.join()
    world.scan()
    assert passes >= 2
    assert _live_paths(world) == _disk_files(world.dir)
