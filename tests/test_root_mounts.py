"""The root boundary on real mounts (DESIGN §4, §6, §8): a root that is a mount point and is
unmounted (while the daemon is stopped or running) is ``unavailable`` (``not-mounted``) with its
rows missing as ``root-unavailable`` and back within 5 s of the remount; a filesystem mounted over
a plain-directory root makes it ``covered``; a root directory replaced by another is re-watched.

A "disk" here is a tmpfs mounted on a directory the test made (``store``), bind-mounted onto
the root, so unmounting the root keeps the files for the remount. Runs as root; skipped where
``mount`` is refused.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.slow

FILES = 300


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"mount refused here: {proc.stderr.strip()}")


def _umount(path: Path) -> None:
    proc = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def _is_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == str(path) for line in f)


@pytest.fixture
def mounts() -> Iterator[Callable[..., None]]:
    """``mount(*args, target)``: mounts, unmounted again (innermost first) at the end."""
    done: list[Path] = []

    def mount(*args: str) -> None:
        _mount(*args)
        done.append(Path(args[-1]))

    yield mount
    for target in reversed(done):
        while _is_mounted(target):
            _umount(target)


def root_state(daemon: Daemon) -> tuple[object, ...] | None:
    rows = daemon.query("SELECT state, state_reason FROM roots WHERE name = 'lib'")
    return rows[0] if rows else None


def row_states(daemon: Daemon, lib: Path) -> set[tuple[object, ...]]:
    return set(
        daemon.query(
            "SELECT is_missing, state_reason FROM asset_cache_states WHERE file_path LIKE ?",
            f"{lib}/%",
        )
    )


def live_count(daemon: Daemon, lib: Path) -> int:
    rows = daemon.query(
        "SELECT count(*) FROM asset_cache_states WHERE is_missing = 0 AND file_path LIKE ?",
        f"{lib}/%",
    )
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def fill(directory: Path, n: int = FILES) -> None:
    for i in range(n):
        sub = directory / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i}.bin").write_bytes(b"x" * (i % 7 + 1))


@pytest.fixture
def disk(tmp_path: Path, mounts: Callable[..., None]) -> Path:
    """A tmpfs holding the root's files at ``store/data``."""
    store = tmp_path / "store"
    store.mkdir()
    mounts("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(store))
    data = store / "data"
    data.mkdir()
    fill(data)
    return data


def test_unmounted_while_stopped_then_remounted_while_running(
    tmp_path: Path, disk: Path, mounts: Callable[..., None]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    mounts("--bind", str(disk), str(lib))
    daemon = Daemon(tmp_path, {"lib": lib})
    try:
        daemon.start()
        wait_until(lambda: live_count(daemon, lib) == FILES, 20, what="all catalogued")
        daemon.add_manual_tag(lib / "d3/f3.bin", "keep-me")
        recorded = daemon.query("SELECT device, is_mount FROM roots")
        assert recorded[0][1] == 1
        assert daemon.stop() == 0
        _umount(lib)  # the empty mount-point directory stays
        daemon.start()
        wait_until(lambda: root_state(daemon) == ("unavailable", "not-mounted"), 10, what="state")
        wait_until(lambda: row_states(daemon, lib) == {(1, "root-unavailable")}, 5, what="rows")
        assert daemon.query("SELECT device, is_mount FROM roots") == recorded  # not overwritten
        mounts("--bind", str(disk), str(lib))
        wait_until(lambda: live_count(daemon, lib) == FILES, 5, what="remount restores in 5 s")
        assert "keep-me" in daemon.tags(lib / "d3/f3.bin")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_unmount_and_remount_while_running(
    tmp_path: Path, disk: Path, mounts: Callable[..., None]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    mounts("--bind", str(disk), str(lib))
    daemon = Daemon(tmp_path, {"lib": lib})
    try:
        daemon.start()
        wait_until(lambda: live_count(daemon, lib) == FILES, 20, what="all catalogued")
        _umount(lib)
        wait_until(lambda: root_state(daemon) == ("unavailable", "not-mounted"), 2, what="2 s")
        wait_until(lambda: row_states(daemon, lib) == {(1, "root-unavailable")}, 2, what="rows")
        mounts("--bind", str(disk), str(lib))
        wait_until(lambda: live_count(daemon, lib) == FILES, 5, what="remount restores in 5 s")
        wait_until(lambda: root_state(daemon) == ("watching", None), 2, what="watching")
        (lib / "after.bin").write_bytes(b"a")  # watched again
        wait_until(lambda: daemon.is_live(lib / "after.bin"), 5, what="new file after remount")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_filesystem_mounted_over_a_plain_root_covers_it(
    tmp_path: Path, mounts: Callable[..., None]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    fill(lib, 50)
    other = tmp_path / "other"  # so that a full reconcile has a root to walk while lib is covered
    other.mkdir()
    daemon = Daemon(tmp_path, {"lib": lib, "other": other})
    try:
        daemon.start()
        wait_until(lambda: live_count(daemon, lib) == 50, 20, what="all catalogued")
        mounts("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(lib))
        wait_until(lambda: root_state(daemon) == ("covered", None), 2, what="covered in 2 s")
        wait_until(lambda: row_states(daemon, lib) == {(1, "root-covered")}, 2, what="rows")
        (lib / "on-the-cover.bin").write_bytes(b"c")
        before = sum(1 for e in daemon.log_events() if e.get("event") == "reconcile.finished")
        daemon.send(signal.SIGUSR1)
        wait_until(
            lambda: (
                sum(1 for e in daemon.log_events() if e.get("event") == "reconcile.finished")
                > before
            ),
            10,
            what="a full reconcile while covered",
        )
        assert daemon.row(lib / "on-the-cover.bin") is None
        assert row_states(daemon, lib) == {(1, "root-covered")}
        _umount(lib)
        wait_until(lambda: live_count(daemon, lib) == 50, 5, what="uncovered: restored in 5 s")
        wait_until(lambda: root_state(daemon) == ("watching", None), 2, what="watching")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_replaced_root_directory_is_rewatched_and_reconciled(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    fill(lib, 50)
    daemon = Daemon(tmp_path, {"lib": lib})
    try:
        daemon.start()
        wait_until(lambda: live_count(daemon, lib) == 50, 20, what="all catalogued")
        old = tmp_path / "lib.old"
        lib.rename(old)
        lib.mkdir()
        (lib / "new.bin").write_bytes(b"n")
        wait_until(lambda: daemon.is_live(lib / "new.bin"), 5, what="new root watched in 5 s")
        wait_until(lambda: live_count(daemon, lib) == 1, 5, what="old rows missing in 5 s")
        (old / "later.bin").write_bytes(b"l")  # the old directory is not followed
        (old / "d1").rename(old / "d1-renamed")
        daemon.barrier(lib)
        assert daemon.row(lib / "later.bin") is None
        assert daemon.query(
            "SELECT count(*) FROM asset_cache_states WHERE file_path LIKE ?", f"{old}/%"
        ) == [(0,)]
        assert live_count(daemon, lib) == 2  # new.bin and the barrier
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_a_root_deleted_and_put_back_on_the_same_inode_is_watched_again(tmp_path: Path) -> None:
    """Found by the stateful test: ``rm -rf lib && cp -a backup lib`` gives the new directory
    the old one's inode number on ext4 (reused at once), so the monitor's (device, inode)
    check saw nothing replaced while the old watch was dead: nothing in the root was seen
    again until the next periodic reconcile. The watch's own "root gone" now decides."""
    lib = tmp_path / "lib"
    lib.mkdir()
    fill(lib, 5)
    backup = tmp_path / "backup"
    shutil.copytree(lib, backup)
    daemon = Daemon(tmp_path, {"lib": lib})
    try:
        daemon.start()
        wait_until(lambda: live_count(daemon, lib) == 5, 20, what="all catalogued")
        inode = lib.stat().st_ino
        shutil.rmtree(lib)
        shutil.copytree(backup, lib)
        if lib.stat().st_ino != inode:
            pytest.skip("this filesystem did not reuse the root's inode number")
        (lib / "after.bin").write_bytes(b"a")
        wait_until(lambda: daemon.is_live(lib / "after.bin"), 10, what="the root watched again")
        assert live_count(daemon, lib) == 6
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_scan_of_an_unmounted_root_marks_rows_root_unavailable_not_reconcile(
    tmp_path: Path, disk: Path, mounts: Callable[..., None]
) -> None:
    """``assetd scan`` judges a root as the daemon does: the empty mount point is not a tree
    whose files were all deleted."""
    lib = tmp_path / "lib"
    lib.mkdir()
    mounts("--bind", str(disk), str(lib))
    daemon = Daemon(tmp_path, {"lib": lib})  # only for its config and catalog helpers

    def scan() -> dict[str, object]:
        proc = subprocess.run(
            [*daemon.command, "scan", "--json", "--config", str(daemon.config)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, object] = json.loads(proc.stdout.splitlines()[-1])
        return result

    assert scan()["new"] == FILES
    _umount(lib)
    result = scan()
    assert result["unavailable"] == ["lib"] and result["missing"] == 0
    assert row_states(daemon, lib) == {(1, "root-unavailable")}
    assert root_state(daemon) == ("unavailable", "not-mounted")
    mounts("--bind", str(disk), str(lib))
    assert scan()["restored"] == FILES
    assert root_state(daemon) == ("watching", None)
