"""Symlinks never bring outside files in (DESIGN §5): the live path, reconcile and ``scan``
treat a directory symlink alike (not walked without ``follow_symlinks``; loops never), a file
symlink whose target lies outside every root is catalogued as a link (its own lstat, never read
or hashed), and the hasher opens a file with ``O_NOFOLLOW`` (a file swapped for a symlink
between the stat and the read is not followed). Real links, real daemon, real catalog."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from cli_world import Cli, catalog_rows, isolate, sqlite_url, tree, write_config
from daemon_harness import Daemon
from helpers import wait_until

SECRET = b"the target's secret content\n" * 37


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def scan(cli: Cli, config: Path) -> dict[str, object]:
    run = cli("scan", "--json", "--config", config)
    assert run.code == 0, run.err
    result: dict[str, object] = json.loads(run.lines[-1])
    return result


def asset_hash(url: str, path: Path) -> object:
    from sqlalchemy import text

    from assetd.catalog.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT a.hash FROM assets a JOIN asset_cache_states c ON c.asset_id = a.id "
                    "WHERE c.file_path = :p"
                ),
                {"p": str(path)},
            ).scalar_one()
    finally:
        engine.dispose()


# --- scan and reconcile ---------------------------------------------------------------------


def test_scan_catalogues_a_file_link_to_outside_as_a_link_and_never_hashes_it(
    cli: Cli, tmp_path: Path
) -> None:
    outside = tree(tmp_path / "outside", {"secret": SECRET})
    lib = tree(tmp_path / "lib", {"real.bin": b"r" * 7})
    os.symlink(outside / "secret", lib / "shadow_pre")  # like -> /etc/shadow
    os.symlink("real.bin", lib / "alias.bin")  # inside the root: takes its target's facts
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    scan(cli, config)
    assert cli("hash", "--config", config).code == 0
    rows = catalog_rows(sqlite_url(state))
    link = rows[f"{lib}/shadow_pre"]
    own = os.lstat(lib / "shadow_pre")
    assert (link["size_bytes"], link["mtime_ns"]) == (own.st_size, own.st_mtime_ns)
    assert link["is_symlink"] is True
    assert asset_hash(sqlite_url(state), lib / "shadow_pre") is None  # never read
    alias = rows[f"{lib}/alias.bin"]
    assert alias["size_bytes"] == 7 and alias["is_symlink"] is False
    assert asset_hash(sqlite_url(state), lib / "alias.bin") == asset_hash(
        sqlite_url(state), lib / "real.bin"
    )
    assert scan(cli, config)["unchanged"] == 3  # and a second pass agrees with the first


def test_reconcile_marks_rows_under_a_directory_replaced_by_a_symlink_missing(
    cli: Cli, tmp_path: Path
) -> None:
    """The rows stay live today: reconcile re-stats them through the link (os.stat)."""
    lib = tree(tmp_path / "lib", {"d/a.bin": b"a", "d/b.bin": b"bb", "keep.bin": b"k"})
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    scan(cli, config)
    outside = tmp_path / "outside"
    shutil.copytree(lib / "d", outside)  # the same files (copy2 keeps mtimes), outside the root
    shutil.rmtree(lib / "d")
    os.symlink(outside, lib / "d")
    result = scan(cli, config)
    rows = catalog_rows(sqlite_url(state))
    assert rows[f"{lib}/d/a.bin"]["is_missing"] is True
    assert rows[f"{lib}/d/b.bin"]["is_missing"] is True
    assert rows[f"{lib}/keep.bin"]["is_missing"] is False
    assert result["missing"] == 2


def test_hasher_does_not_follow_a_file_swapped_for_a_symlink(cli: Cli, tmp_path: Path) -> None:
    """Same size and mtime behind the link: only O_NOFOLLOW keeps the outside content out."""
    outside = tree(tmp_path / "outside", {"secret": SECRET})
    lib = tree(tmp_path / "lib", {"model.bin": b"m" * len(SECRET)})
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    scan(cli, config)
    st = os.stat(lib / "model.bin")
    os.utime(outside / "secret", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.unlink(lib / "model.bin")
    os.symlink(outside / "secret", lib / "model.bin")  # swapped between the stat and the read
    assert cli("hash", "--config", config).code == 0
    from blake3 import blake3

    secret_hash = "blake3:" + blake3(SECRET).hexdigest()
    assert asset_hash(sqlite_url(state), lib / "model.bin") != secret_hash


# --- the live path ------------------------------------------------------------------------


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return tree(tmp_path / "lib", {"real.bin": b"real"})


def _reconciles(daemon: Daemon) -> int:
    return sum(1 for e in daemon.log_events() if e.get("event") == "reconcile.finished")


def _full_reconcile(daemon: Daemon) -> None:
    before = _reconciles(daemon)
    daemon.send(signal.SIGUSR1)
    wait_until(lambda: _reconciles(daemon) > before, 20, what="SIGUSR1 reconcile")


@pytest.mark.slow
def test_live_directory_symlinks_and_loops_bring_nothing_in(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    outside = tree(tmp_path / "outside", {"passwd": b"root:x:0:0", "ssl/key.pem": b"KEY"})
    daemon.start()
    wait_until(lambda: daemon.is_live(lib / "real.bin"), 15, what="start-up reconcile")
    os.symlink(outside, lib / "etc_live")  # like `ln -s /etc root/etc_live`
    (lib / "loop").mkdir()
    (lib / "loop" / "inner.bin").write_bytes(b"i")
    os.symlink("..", lib / "loop" / "up")  # a loop: root/loop/up -> root
    daemon.barrier(lib)
    wait_until(lambda: daemon.is_live(lib / "loop" / "inner.bin"), 10, what="inner.bin")
    _full_reconcile(daemon)
    daemon.barrier(lib)
    under_link = daemon.query(
        "SELECT file_path FROM asset_cache_states WHERE file_path LIKE ? OR file_path LIKE ?",
        f"{lib}/etc_live/%",
        f"{lib}/loop/up/%",
    )
    assert under_link == []
    assert daemon.stop() == 0


@pytest.mark.slow
def test_live_file_link_to_outside_is_a_link_never_hashed(
    daemon: Daemon, lib: Path, tmp_path: Path
) -> None:
    outside = tree(tmp_path / "outside", {"secret": SECRET})
    daemon.start()
    wait_until(lambda: daemon.is_live(lib / "real.bin"), 15, what="start-up reconcile")
    link = lib / "shadow_live"
    os.symlink(outside / "secret", link)
    wait_until(lambda: daemon.is_live(link), 10, what="the link is catalogued")
    (lib / "after.bin").write_bytes(b"hashed after the link")
    hashed = "SELECT a.hash FROM assets a JOIN asset_cache_states c ON c.asset_id = a.id "
    hashed += "WHERE c.file_path = ?"

    def after_hashed() -> bool:
        rows = daemon.query(hashed, str(lib / "after.bin"))
        return bool(rows and rows[0][0])

    wait_until(after_hashed, 20, what="a later file hashed (the hasher went past the link)")
    [(size, is_symlink)] = daemon.query(
        "SELECT size_bytes, is_symlink FROM asset_cache_states WHERE file_path = ?", str(link)
    )
    assert (size, is_symlink) == (os.lstat(link).st_size, 1)
    assert daemon.query(hashed, str(link)) == [(None,)]
    assert daemon.stop() == 0


# --- the hasher's open --------------------------------------------------------------------


def test_hash_file_never_opens_through_a_symlink(tmp_path: Path) -> None:
    from assetd.hashing.digest import LARGE_FILE, hash_file

    outside = tree(tmp_path / "outside", {"secret": SECRET, "big": b"b" * LARGE_FILE})
    for name in ("secret", "big"):
        link = tmp_path / f"link-{name}"
        os.symlink(outside / name, link)
        for kwargs in ({}, {"throttle": lambda n: None}):
            with pytest.raises(OSError) as err:
                hash_file(str(link), **kwargs)  # type: ignore[arg-type]
            assert err.value.errno == errno.ELOOP


def test_read_digest_of_a_file_swapped_for_a_link_at_the_open(tmp_path: Path) -> None:
    """The seam: the file is swapped for a link to a same-size, same-mtime outside file after
    the unchanged-check, just before the open (verify_file_unchanged follows links)."""
    from assetd.catalog.content import HashJob, Outcome
    from assetd.hashing import digest

    outside = tree(tmp_path / "outside", {"secret": SECRET})
    lib = tree(tmp_path / "lib", {"model.bin": b"m" * len(SECRET)})
    path = lib / "model.bin"
    st = os.stat(path)
    os.utime(outside / "secret", ns=(st.st_atime_ns, st.st_mtime_ns))
    job = HashJob(1, 1, str(path), str(path), st.st_size, st.st_mtime_ns)

    def swap_then_resolve(j: HashJob) -> str | None:
        os.unlink(path)
        os.symlink(outside / "secret", path)
        return j.path  # what a reader resolved before the swap: the open must not follow

    assert digest.read_digest(job, readable=swap_then_resolve) == (None, Outcome.CHANGED)
