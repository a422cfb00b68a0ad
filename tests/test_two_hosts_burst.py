"""Two real daemons with different host ids on one PostgreSQL catalog, each deleting its own
files at the same moment (issue 16): both catalogs converge (every row of each host missing,
none of the other host's touched), no batch fails, no error is logged, both stay up. The time
against one host alone is measured by ``bench/hosts_bench.py``, never asserted here."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import make_engine
from cli_world import write_config
from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.pg

FILES, DIRS = 2000, 20
EXTRA = "[watch]\nquiet_ms = 20\n[hashing]\nenabled = false\n[api]\nlisten = []\n"


def _tree(top: Path) -> list[Path]:
    files = []
    for i in range(FILES):
        p = top / f"d{i % DIRS:02}" / f"f{i:05}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * (1 + i % 50))
        files.append(p)
    return files


def _daemon(tmp_path: Path, host: str, url: str) -> tuple[Daemon, list[Path]]:
    top = tmp_path / host
    files = _tree(top / "files")
    d = Daemon(top, {"files": top / "files"})
    write_config(
        d.config,
        roots={"files": top / "files"},
        state_dir=d.state,
        url=url,
        host=host,
        extra=EXTRA,
    )
    return d, files


def counts(url: str) -> dict[str, tuple[int, int]]:
    """host -> (live rows, missing rows)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.host, count(*) FILTER (WHERE NOT c.is_missing), "
                    "count(*) FILTER (WHERE c.is_missing) FROM asset_cache_states c "
                    "JOIN roots r ON r.id = c.root_id GROUP BY r.host"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(h): (int(live), int(missing)) for h, live, missing in rows}


def test_two_hosts_deleting_at_once_both_converge_without_error(
    tmp_path: Path, pg_url: str
) -> None:
    a, files_a = _daemon(tmp_path, "host-a", pg_url)
    b, files_b = _daemon(tmp_path, "host-b", pg_url)
    try:
        a.start()
        b.start()
        catalogued = {"host-a": (FILES, 0), "host-b": (FILES, 0)}
        wait_until(lambda: counts(pg_url) == catalogued, 60, what="both hosts catalogued")
        go = threading.Barrier(2)

        def delete(files: list[Path]) -> None:
            go.wait()
            for p in files:
                os.remove(p)

        threads = [threading.Thread(target=delete, args=(f,)) for f in (files_a, files_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        gone = {"host-a": (0, FILES), "host-b": (0, FILES)}
        wait_until(lambda: counts(pg_url) == gone, 90, what="both hosts' deletions applied")
        assert a.proc is not None and b.proc is not None
        assert a.proc.poll() is None and b.proc.poll() is None
        assert a.stop() == 0 and b.stop() == 0
    finally:
        a.close()
        b.close()
    for d in (a, b):
        events = d.log_events()
        errors = [e for e in events if e.get("level") in ("error", "critical")]
        assert errors == [], errors
        names = {str(e.get("event")) for e in events}
        assert "batch.failed" not in names
        assert "batch.applied" in names  # the deletions came through the live worker
