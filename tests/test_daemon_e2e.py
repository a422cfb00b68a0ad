"""End to end: the real `assetd run` process, real inotify, a real SQLite catalog (§8)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from daemon_harness import Daemon, NotifySocket
from helpers import wait_until

pytestmark = pytest.mark.slow

BOTH = pytest.mark.parametrize("backend", ["inotify", "fanotify"])
"""The core live cases run on both watch backends (the rest on the default, inotify)."""


@BOTH
def test_ready_delete_restore_and_sigterm(daemon: Daemon, lib: Path) -> None:
    f = lib / "model.safetensors"
    f.write_bytes(b"weights")
    daemon.start()
    wait_until(lambda: daemon.is_live(f), 15, what="start-up reconcile seeds the file")
    f.unlink()
    wait_until(lambda: daemon.is_missing(f), 5, what="delete -> missing")
    assert daemon.row(f)[1] == "live"  # type: ignore[index]
    f.write_bytes(b"weights")
    wait_until(lambda: daemon.is_live(f), 5, what="recreate -> restored")
    notify = daemon.notify
    assert notify is not None
    wait_until(lambda: notify.has("WATCHDOG=1"), 10, what="WATCHDOG=1 while the canary flows")
    wait_until(lambda: any(m.startswith("STATUS=") for m in notify.messages), 20, what="STATUS")
    pid = daemon.proc.pid  # type: ignore[union-attr]
    wait_until(
        lambda: daemon.query("SELECT pid, status FROM daemons") == [(pid, "running")],
        5,
        what="daemons row",
    )
    assert daemon.stop(signal.SIGTERM) == 0
    assert daemon.notify is not None and daemon.notify.has("STOPPING=1")
    events = {e.get("event") for e in daemon.log_events()}
    assert {"daemon.started", "batch.applied", "cache_state.missing", "daemon.stopped"} <= events
    started = next(e for e in daemon.log_events() if e.get("event") == "daemon.started")
    assert started["backends"] == {"lib": daemon.backend}


@BOTH
def test_renames_keep_tags_at_once(daemon: Daemon, lib: Path) -> None:
    (lib / "dir/sub").mkdir(parents=True)
    f = lib / "dir/sub/a.ckpt"
    f.write_bytes(b"a")
    g = lib / "b.ckpt"
    g.write_bytes(b"b")
    daemon.start()
    wait_until(lambda: daemon.is_live(f) and daemon.is_live(g), 15)
    daemon.add_manual_tag(f, "in-dir")
    daemon.add_manual_tag(g, "file")
    g.rename(lib / "renamed.ckpt")
    (lib / "dir").rename(lib / "moved-dir")
    wait_until(lambda: daemon.is_live(lib / "moved-dir/sub/a.ckpt"), 5, what="dir move")
    wait_until(lambda: daemon.is_live(lib / "renamed.ckpt"), 5, what="file move")
    assert "in-dir" in daemon.tags(lib / "moved-dir/sub/a.ckpt")
    assert "file" in daemon.tags(lib / "renamed.ckpt")
    assert daemon.row(f) is None  # the row moved; nothing left missing behind


@BOTH
def test_new_directory_with_files(daemon: Daemon, lib: Path) -> None:
    daemon.start()
    staging = lib.parent / "staging"
    (staging / "deep/er").mkdir(parents=True)
    for i in range(20):
        (staging / f"deep/er/f{i}").write_bytes(b"x")
    staging.rename(lib / "arrived")  # arrives whole, files written before any watch existed
    (lib / "made-here/x").mkdir(parents=True)
    (lib / "made-here/x/y.bin").write_bytes(b"y")
    wait_until(lambda: daemon.is_live(lib / "arrived/deep/er/f19"), 5)
    wait_until(lambda: daemon.is_live(lib / "made-here/x/y.bin"), 5)
    assert all(daemon.is_live(lib / f"arrived/deep/er/f{i}") for i in range(20))


def test_a_new_file_is_logged_by_path(daemon: Daemon, lib: Path) -> None:
    """`assetd logs --path P` can tell when P was first catalogued: cache_state.created."""
    daemon.start()
    wait_until(  # a file made during the start-up reconcile may be seeded by it instead
        lambda: any(e.get("event") == "reconcile.finished" for e in daemon.log_events()),
        15,
        what="start-up reconcile finished",
    )
    new = lib / "fresh.bin"
    new.write_bytes(b"new")
    wait_until(lambda: daemon.is_live(new), 5, what="new file catalogued")

    def created() -> bool:
        return any(
            e.get("event") == "cache_state.created" and str(new) in e.get("paths", [])  # type: ignore[operator]
            for e in daemon.log_events()
        )

    wait_until(created, 5, what="cache_state.created naming the file")


@BOTH
def test_root_removed_and_restored(daemon: Daemon, lib: Path) -> None:
    f = lib / "a/file"
    f.parent.mkdir()
    f.write_bytes(b"1")
    daemon.start()
    wait_until(lambda: daemon.is_live(f), 15)
    away = lib.with_name("lib-unplugged")
    lib.rename(away)
    wait_until(lambda: daemon.is_missing(f), 5, what="root gone -> missing")
    assert daemon.row(f)[1] == "root-unavailable"  # type: ignore[index]
    assert daemon.query("SELECT state FROM roots")[0][0] == "unavailable"
    away.rename(lib)
    # the promise is 5 s (measured in tests/test_root_mounts.py's figures); the deadline leaves a
    # loaded CI machine slack
    wait_until(lambda: daemon.is_live(f), 15, what="root back -> restored")
    wait_until(lambda: daemon.query("SELECT state FROM roots")[0][0] == "watching", 5)
    g = lib / "after"
    g.write_bytes(b"2")
    wait_until(lambda: daemon.is_live(g), 5, what="watching again after the root came back")


def test_kill_9_mid_burst_then_restart(daemon: Daemon, lib: Path) -> None:
    for i in range(300):
        (lib / f"keep{i}").write_bytes(b"k")
    daemon.start()
    wait_until(lambda: daemon.is_live(lib / "keep299"), 15)
    for i in range(150):
        (lib / f"keep{i}").unlink()
        (lib / f"new{i}").write_bytes(b"n")
    daemon.stop(signal.SIGKILL)
    daemon.start()
    wait_until(lambda: daemon.is_live(lib / "new149"), 15)
    daemon.barrier(lib)

    def live_paths() -> set[str]:
        rows = daemon.query("SELECT file_path FROM asset_cache_states WHERE is_missing = 0")
        return {str(r[0]) for r in rows}

    wait_until(
        lambda: live_paths() == {str(p) for p in lib.iterdir()}, 15, what="catalog equals disk"
    )
    missing = {
        str(r[0])
        for r in daemon.query("SELECT file_path FROM asset_cache_states WHERE is_missing = 1")
    }
    assert missing == {str(lib / f"keep{i}") for i in range(150)}
    pathless = daemon.query(  # nothing may end with no path (cleanup could never reach it)
        "SELECT count(*) FROM assets a WHERE NOT EXISTS "
        "(SELECT 1 FROM asset_cache_states c WHERE c.asset_id = a.id)"
    )
    assert pathless == [(0,)]


def test_sighup_adds_a_root_and_survives_a_broken_file(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    daemon.start()
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.bin").write_bytes(b"o")
    daemon.write_config({"lib": lib, "other": other})
    daemon.send(signal.SIGHUP)
    wait_until(lambda: daemon.is_live(other / "o.bin"), 10, what="added root seeded")
    (other / "p.bin").write_bytes(b"p")
    wait_until(lambda: daemon.is_live(other / "p.bin"), 5, what="added root watched")
    assert daemon.notify is not None and daemon.notify.has("RELOADING=1")
    daemon.config.write_text("[watch]\nquiet_ms = 'not a number'\n")
    daemon.send(signal.SIGHUP)
    wait_until(lambda: any(e.get("event") == "config.invalid" for e in daemon.log_events()), 5)
    (lib / "still.bin").write_bytes(b"s")
    wait_until(lambda: daemon.is_live(lib / "still.bin"), 5, what="still running on the old config")
    assert daemon.proc is not None and daemon.proc.poll() is None
    # a root removed from the config: its files are marked missing (kept), the rest goes on
    daemon.write_config({"other": other})
    daemon.send(signal.SIGHUP)
    wait_until(lambda: daemon.is_missing(lib / "still.bin"), 10, what="removed root pruned")
    assert daemon.row(lib / "still.bin")[1] == "prune"  # type: ignore[index]
    assert daemon.is_live(other / "p.bin")


def test_idle_tree_of_10000_directories_has_no_overflow(daemon: Daemon, lib: Path) -> None:
    for i in range(100):
        for j in range(100):
            os.makedirs(lib / f"d{i}/e{j}")
    daemon.start()
    daemon.barrier(lib)
    daemon.barrier(lib / "d99/e99")
    events = [e.get("event") for e in daemon.log_events()]
    assert "watch.overflow" not in events
    text = daemon.log_text().lower()
    assert "overflow" not in text


def test_a_second_daemon_for_the_same_host_exits_75(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    second = Daemon(tmp_path, daemon.roots)
    second.notify = NotifySocket(tmp_path / "notify-second.sock")
    second.log_path = tmp_path / "second.log"
    second.start(wait_ready=False)
    assert second.proc is not None
    assert second.proc.wait(30) == 75
    assert "another assetd" in second.log_text()
    second.close()


def test_daemon_hashes_in_the_background_and_dedupes(daemon: Daemon, lib: Path) -> None:
    import blake3

    (lib / "one.bin").write_bytes(b"same content")
    (lib / "two.bin").write_bytes(b"same content")
    daemon.start()

    def assets() -> list[tuple[object, ...]]:
        return daemon.query(
            "SELECT c.file_path, a.id, a.hash FROM asset_cache_states c "
            "JOIN assets a ON a.id = c.asset_id WHERE c.is_missing = 0 ORDER BY c.file_path"
        )

    wait_until(lambda: len(assets()) == 2 and all(r[2] for r in assets()), 20, what="hashed")
    (_, a1, h1), (_, a2, _) = assets()
    assert a1 == a2, "identical content is one asset"
    assert h1 == "blake3:" + blake3.blake3(b"same content").hexdigest()
    (lib / "three.bin").write_bytes(b"other")  # a live seed is hashed too
    wait_until(lambda: len(assets()) == 3 and all(r[2] for r in assets()), 20, what="live hash")


def test_hashing_does_not_delay_a_delete(daemon: Daemon, lib: Path) -> None:
    """While the hasher works through large files, a deletion still shows as missing within
    the debounce window plus a little (the hasher runs at low priority and yields)."""
    (lib / "big").mkdir()
    for i in range(2):
        with open(lib / f"big/sparse{i}.bin", "wb") as f:
            f.truncate(4 << 30)  # 4 GiB of holes: hashed at memory speed, no disk used
    small = lib / "small.bin"
    small.write_bytes(b"s")
    daemon.start()
    wait_until(lambda: daemon.is_live(small) and daemon.is_live(lib / "big/sparse1.bin"), 15)
    small.unlink()
    wait_until(lambda: daemon.is_missing(small), 2.0, what="missing within 2 s while hashing")
    hashed = daemon.query("SELECT count(*) FROM assets WHERE hash IS NOT NULL")[0][0]
    assert isinstance(hashed, int) and hashed < 3, (
        "the delete was timed while hashing was still under way"
    )
