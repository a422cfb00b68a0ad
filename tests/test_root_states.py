"""Root states (DESIGN §4, §6) with the real daemon: a root missing at start, a root that is a
regular file, a root the daemon may not read. Each is ``unavailable`` with its reason in the log,
the roots table and ``assetd status``; none ends ``run``; each is picked up within 5 s of being
back."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from daemon_harness import Daemon, NotifySocket
from helpers import wait_until
from hung_fs import hung_mount
from unprivileged import give_to_nobody, nobody

pytestmark = pytest.mark.slow


def root_state(daemon: Daemon, name: str = "lib") -> tuple[object, ...] | None:
    rows = daemon.query("SELECT state, state_reason FROM roots WHERE name = ?", name)
    return rows[0] if rows else None


def unavailable_logged(daemon: Daemon, reason: str) -> bool:
    return any(
        e.get("event") == "root.unavailable" and e.get("reason") == reason
        for e in daemon.log_events()
    )


def status_json(daemon: Daemon) -> dict[str, object]:
    proc = subprocess.run(
        [*daemon.command, "status", "--json", "--config", str(daemon.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon_env(daemon),
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def status_roots(daemon: Daemon) -> list[tuple[object, object]]:
    """(state, state_reason) of each root, as ``assetd status --json`` reports them."""
    roots = status_json(daemon)["roots"]
    assert isinstance(roots, list)
    return [(r["state"], r["state_reason"]) for r in roots]


def daemon_env(daemon: Daemon) -> dict[str, str]:
    return dict(daemon.base_env) if daemon.base_env is not None else dict(os.environ)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    d = tmp_path / "lib"
    d.mkdir()
    (d / "a.bin").write_bytes(b"a")
    (d / "b.bin").write_bytes(b"bb")
    return d


def test_root_missing_at_start_is_unavailable_and_comes_back(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    daemon.start()
    wait_until(lambda: daemon.is_live(lib / "b.bin"), 15, what="first start catalogues")
    assert daemon.stop() == 0
    away = tmp_path / "lib.away"
    lib.rename(away)
    daemon.start()
    wait_until(lambda: root_state(daemon) == ("unavailable", "missing"), 10, what="missing")
    wait_until(lambda: unavailable_logged(daemon, "missing"), 5, what="root.unavailable logged")
    rows = daemon.query("SELECT is_missing, state_reason FROM asset_cache_states")
    assert sorted(rows) == [(1, "root-unavailable"), (1, "root-unavailable")]
    assert status_roots(daemon) == [("unavailable", "missing")]
    assert daemon.proc is not None and daemon.proc.poll() is None  # run goes on
    away.rename(lib)
    wait_until(lambda: daemon.is_live(lib / "a.bin"), 5, what="restored within 5 s")
    wait_until(lambda: root_state(daemon) == ("watching", None), 5, what="watching again")
    daemon.barrier(lib)  # and watched: a new file is catalogued
    assert daemon.stop() == 0


def test_root_that_is_a_regular_file_is_unavailable_not_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "lib"
    path.write_bytes(b"not a directory")
    daemon = Daemon(tmp_path, {"lib": path})
    try:
        daemon.start()
        wait_until(
            lambda: root_state(daemon) == ("unavailable", "not-a-directory"), 10, what="state"
        )
        wait_until(lambda: unavailable_logged(daemon, "not-a-directory"), 5, what="logged")
        path.unlink()
        path.mkdir()
        (path / "new.bin").write_bytes(b"n")
        wait_until(lambda: daemon.is_live(path / "new.bin"), 5, what="picked up within 5 s")
        assert daemon.stop() == 0
    finally:
        daemon.close()


def test_unreadable_root_is_permission_denied_rows_untouched_then_picked_up() -> None:
    with nobody() as nb:
        lib = nb.base / "lib"
        lib.mkdir()
        (lib / "a.bin").write_bytes(b"a")
        give_to_nobody(lib)
        daemon = Daemon(nb.base, {"lib": lib}, command=nb.command, env=nb.env)
        daemon.state.mkdir()
        give_to_nobody(daemon.state)
        daemon.notify = NotifySocket(nb.base / "notify.sock")
        os.chmod(daemon.notify.path, 0o777)  # nobody sends READY=1 to it
        try:
            daemon.start()
            wait_until(lambda: daemon.is_live(lib / "a.bin"), 15, what="first start")
            assert daemon.stop() == 0
            give_to_nobody(daemon.state)
            os.chmod(lib, 0)
            daemon.start()
            wait_until(
                lambda: root_state(daemon) == ("unavailable", "permission-denied"), 10, what="state"
            )
            wait_until(lambda: unavailable_logged(daemon, "permission-denied"), 5, what="logged")
            assert daemon.row(lib / "a.bin")[:2] == (0, "seed")  # type: ignore[index]
            assert status_roots(daemon) == [("unavailable", "permission-denied")]
            os.chmod(lib, 0o755)
            (lib / "new.bin").write_bytes(b"n")
            wait_until(lambda: daemon.is_live(lib / "new.bin"), 5, what="picked up within 5 s")
            assert daemon.stop() == 0
        finally:
            os.chmod(lib, 0o755)
            daemon.close()


# --- a hung filesystem: a FUSE mount whose server never answers ------------------------------


def watchdog_pings(daemon: Daemon) -> int:
    assert daemon.notify is not None
    return sum(1 for m in list(daemon.notify.messages) if "WATCHDOG=1" in m.split("\n"))


def test_a_hung_root_is_not_responding_and_never_freezes_the_daemon(
    tmp_path: Path, lib: Path
) -> None:
    hung = tmp_path / "nfs"
    hung.mkdir()
    (hung / "old.bin").write_bytes(b"o")  # catalogued while the share answered
    daemon = Daemon(tmp_path, {"lib": lib, "nfs": hung})
    try:
        daemon.start()
        hashed = (
            "SELECT a.hash FROM assets a JOIN asset_cache_states c ON c.asset_id = a.id "
            "WHERE c.file_path = ?"
        )
        wait_until(  # (a hasher thread inside a read on the share when it hangs stays stuck)
            lambda: (daemon.query(hashed, str(hung / "old.bin")) or [(None,)])[0][0],
            15,
            what="catalogued and hashed",
        )
        with hung_mount(hung):  # the server stops answering
            wait_until(
                lambda: root_state(daemon, "nfs") == ("unavailable", "not-responding"),
                15,
                what="not-responding after the probe deadline",
            )
            assert daemon.row(hung / "old.bin")[:2] == (1, "root-unavailable")  # type: ignore[index]
            pings = watchdog_pings(daemon)
            wait_until(lambda: watchdog_pings(daemon) > pings, 10, what="WATCHDOG=1 goes on")
            daemon.barrier(lib)  # the other root is served as ever
            assert daemon.stop() == 0  # and SIGTERM is acted on
    finally:
        daemon.close()
