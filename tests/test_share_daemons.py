"""Two real daemons on one PostgreSQL catalog, each with a root on the same directory labelled
``shared`` (DESIGN §7): a share one host hashed costs the other almost no reads, and two hosts
meeting a fresh share at once read it about once between them. Bytes read are the ``rchar`` of
each daemon's process tree (its hash children included) in ``/proc/PID/io``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import make_engine
from cli_world import write_config
from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.pg

FILES, SIZE = 300, 50 * 1024
SHARE_BYTES = FILES * SIZE
EXTRA = "[watch]\nquiet_ms = 20\n[api]\nlisten = []\n"


@pytest.fixture
def share(tmp_path: Path) -> Path:
    d = tmp_path / "nas"
    for i in range(FILES):
        p = d / f"d{i % 10}" / f"f{i:03}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(SIZE))
    return d


def _daemon(tmp_path: Path, host: str, share: Path, url: str) -> Daemon:
    top = tmp_path / host
    top.mkdir()
    d = Daemon(top, {"nas": share})
    write_config(
        d.config,
        roots={"nas": share},
        state_dir=d.state,
        url=url,
        host=host,
        root_extra='shared = "nas"',
        extra=EXTRA,
    )
    return d


def tree_rchar(pid: int) -> int:
    """``rchar`` of the process and every descendant still running."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/io") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("rchar:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def hashed(url: str, host: str) -> int:
    """The host's paths whose hash was recorded (read or trusted) for their current figures."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM asset_cache_states c JOIN roots r "
                        "ON r.id = c.root_id JOIN assets a ON a.id = c.asset_id "
                        "WHERE r.host = :h AND a.hash IS NOT NULL AND NOT c.needs_verify "
                        "AND c.hashed_size_bytes = c.size_bytes"
                    ),
                    {"h": host},
                ).scalar_one()
            )
    finally:
        engine.dispose()


class Reading:
    """A daemon's bytes read from READY=1 on. Anything hashed before that moment is added as if
    read whole (``before``), so the figure is an upper bound."""

    def __init__(self, daemon: Daemon, url: str, host: str) -> None:
        assert daemon.proc is not None and daemon.notify is not None
        notify, proc = daemon.notify, daemon.proc
        wait_until(lambda: notify.has("READY=1") or proc.poll() is not None, 30, what="READY")
        assert proc.poll() is None, daemon.log_text()
        self.pid = proc.pid
        self.start = tree_rchar(self.pid)
        self.before = hashed(url, host) * SIZE

    def bytes(self) -> int:
        return tree_rchar(self.pid) - self.start + self.before


def test_a_share_another_host_hashed_costs_almost_no_reads(
    tmp_path: Path, share: Path, pg_url: str
) -> None:
    a = _daemon(tmp_path, "host-a", share, pg_url)
    b = _daemon(tmp_path, "host-b", share, pg_url)
    try:
        a.start(wait_ready=False)
        read_a = Reading(a, pg_url, "host-a")
        wait_until(lambda: hashed(pg_url, "host-a") == FILES, 60, what="host A hashed")
        bytes_a = read_a.bytes()
        assert a.stop() == 0
        b.start(wait_ready=False)
        read_b = Reading(b, pg_url, "host-b")
        wait_until(lambda: hashed(pg_url, "host-b") == FILES, 60, what="host B catalogued")
        bytes_b = read_b.bytes()
        assert b.stop() == 0
    finally:
        a.close()
        b.close()
    print(
        f"\nshare {SHARE_BYTES} B: host A read {bytes_a} B ({bytes_a / SHARE_BYTES:.3f}x), "
        f"host B read {bytes_b} B ({bytes_b / SHARE_BYTES:.4f}x)"
    )
    assert bytes_a >= SHARE_BYTES  # the measure sees a hash's reads
    assert bytes_b < 0.05 * SHARE_BYTES, f"host B read {bytes_b} bytes"


def test_two_hosts_hashing_a_fresh_share_at_once_read_it_about_once(
    tmp_path: Path, share: Path, pg_url: str
) -> None:
    a = _daemon(tmp_path, "host-a", share, pg_url)
    b = _daemon(tmp_path, "host-b", share, pg_url)
    try:
        a.start(wait_ready=False)
        b.start(wait_ready=False)
        read_a = Reading(a, pg_url, "host-a")
        read_b = Reading(b, pg_url, "host-b")
        wait_until(
            lambda: hashed(pg_url, "host-a") == FILES and hashed(pg_url, "host-b") == FILES,
            90,
            what="both hosts hashed",
        )
        total = read_a.bytes() + read_b.bytes()
        assert a.stop() == 0 and b.stop() == 0
    finally:
        a.close()
        b.close()
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            n_assets = conn.execute(text("SELECT count(*) FROM assets")).scalar_one()
            claims = conn.execute(text("SELECT count(*) FROM share_hash_claims")).scalar_one()
    finally:
        engine.dispose()
    print(f"\nshare {SHARE_BYTES} B: both hosts read {total} B ({total / SHARE_BYTES:.3f}x)")
    assert n_assets == FILES  # one asset per content, no duplicate
    assert claims == 0  # idle hosts hold no claims
    assert total <= 1.3 * SHARE_BYTES, f"{total / SHARE_BYTES:.2f}x the share read"
