"""A live batch flushed while its root is away (issue 12; DESIGN §4, §6).

The batch's changes were read while the root was there; by flush time its directory is moved
away or its filesystem unmounted, so every path it names is absent. Those rows are the root's:
the worker marks them as the root keeper would (``root-unavailable``, which ``cleanup`` never
counts), not ``live`` (a deletion, which it would), and tells the daemon the root is away. Real
directories, a real tmpfs mount (as root), a real catalog.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetd.catalog.cleanup import find_cleanup_candidates
from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec
from assetd.catalog.vocab import Reason
from assetd.live.changes import Batch, Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world, with_root
from daemon_harness import Daemon
from helpers import wait_until


def _batch(world: World, *paths: Path) -> Batch:
    return coalesce([Change(Kind.MODIFIED, str(p)) for p in paths], roots=[str(world.dir)])


def _cleanup_would_delete(world: World) -> list[int]:
    with world.sessions() as s:
        return find_cleanup_candidates(s, roots=[world.root.id], older_than=dt.timedelta(0))


def _apply(world: World, root: RootSpec, *paths: Path) -> list[str]:
    away: list[str] = []
    worker = Worker(world.sessions, [root], on_root_away=away.append)
    worker.apply(_batch(world, *paths))
    return away


def test_a_batch_flushed_after_its_root_moved_away_marks_the_rows_root_unavailable(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    files = [world.write(f"d/f{i}.bin") for i in range(3)] + [world.write("top.bin")]
    world.scan()
    os.rename(world.dir, tmp_path / "away")  # between the events and the flush

    away = _apply(world, world.root, *files)

    for f in files:
        state = world.state(str(f))
        assert state is not None
        assert (state["is_missing"], state["state_reason"]) == (True, Reason.ROOT_UNAVAILABLE)
    assert away == ["lib"]
    assert _cleanup_would_delete(world) == []  # what an unplugged disk held is never cleaned up


def test_a_batch_of_a_present_root_still_marks_its_deletions_live(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    f = world.write("d/f.bin")
    world.write("d/kept.bin")
    world.scan()
    f.unlink()

    away = _apply(world, world.root, f)

    state = world.state("d/f.bin")
    assert state is not None
    assert (state["is_missing"], state["state_reason"]) == (True, Reason.LIVE)
    assert world.state("d/kept.bin")["is_missing"] is False  # type: ignore[index]
    assert away == []


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    lib = tmp_path / "lib"
    lib.mkdir()
    proc = _run("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(lib))
    if proc.returncode != 0:
        pytest.skip(f"mount refused here (needs root): {proc.stderr.strip()}")
    try:
        yield lib
    finally:
        if _run("umount", str(lib)).returncode != 0 and os.path.ismount(lib):
            _run("umount", "-l", str(lib))


def test_a_batch_flushed_after_its_filesystem_was_unmounted_marks_the_rows_root_unavailable(
    sessions: SessionFactory, tmpfs: Path
) -> None:
    world = make_world(sessions, tmpfs)
    files = [world.write(f"d/f{i}.bin") for i in range(10)]  # >= LIST_MIN: one listing
    world.scan()
    root = with_root(world, device=os.stat(tmpfs).st_dev, is_mount=True)  # as recorded
    assert _run("umount", str(tmpfs)).returncode == 0  # the mount point stays, empty

    away = _apply(world, root, *files)

    reasons = {(world.state(str(f)) or {}).get("state_reason") for f in files}
    assert reasons == {Reason.ROOT_UNAVAILABLE}
    assert away == ["lib"]
    assert _cleanup_would_delete(world) == []


def test_a_file_changed_just_before_its_root_moved_away_is_not_taken_for_deleted(
    tmp_path: Path,
) -> None:
    """The real daemon: a change whose batch flushes after its root left (an unplugged disk)."""
    lib = tmp_path / "lib"
    for i in range(20):
        (lib / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (lib / f"d{i % 2}" / f"f{i}.bin").write_bytes(b"x" * (i + 1))
    daemon = Daemon(tmp_path, {"lib": lib})

    def rows() -> set[tuple[object, ...]]:
        return set(daemon.query("SELECT is_missing, state_reason FROM asset_cache_states"))

    def live() -> int:
        return len(daemon.query("SELECT id FROM asset_cache_states WHERE is_missing = 0"))

    try:
        daemon.start()
        wait_until(lambda: live() == 20, 20, what="all catalogued")
        (lib / "d0" / "f0.bin").write_bytes(b"changed")  # its batch waits out the quiet window
        os.rename(lib, tmp_path / "away")
        wait_until(lambda: rows() == {(1, Reason.ROOT_UNAVAILABLE)}, 10, what="root-unavailable")
        os.rename(tmp_path / "away", lib)
        wait_until(lambda: live() == 20, 10, what="all back")
        size = daemon.query(
            "SELECT size_bytes FROM asset_cache_states WHERE file_path = ?", str(lib / "d0/f0.bin")
        )
        assert size == [(7,)]
        assert daemon.stop() == 0
    finally:
        daemon.close()
