"""A database error never drops a change (issue 9, B).

Unavailable or locked: pending changes are kept (bounded; past the bound the roots are noted for
a reconcile), the database is probed every second, ``database.unavailable`` and
``database.restored`` are logged once each, and the catalog equals the disk within 3 s of the
database answering again. A data error: ``batch.failed``, the touched subtrees are reconciled,
the pipeline carries on. Real components throughout: a refused PostgreSQL port, a poison row
refused by a real trigger, and (in test_db_outage_daemon.py) the real daemon.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import subprocess
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc, text
from structlog.testing import capture_logs

from assetd.catalog.engine import SessionFactory, make_engine, session_factory
from assetd.catalog.overview import DaemonRow
from assetd.commands.status import daemon_attention, describe_daemon
from assetd.live.changes import Change, Kind
from assetd.live.pipeline import Pipeline
from assetd.live.worker import Worker
from catalog_world import World, make_world
from helpers import wait_until

REFUSED_URL = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"  # nothing listens on port 1

_SQLITE_POISON = (
    "CREATE TRIGGER poison BEFORE INSERT ON asset_cache_states "
    "WHEN NEW.file_path LIKE '%/poison%' BEGIN SELECT RAISE(ABORT, 'poison row'); END"
)
_PG_POISON = (
    "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
    "IF NEW.file_path LIKE '%/poison%' THEN "
    "RAISE EXCEPTION 'poison row' USING ERRCODE = '23514'; END IF; RETURN NEW; END $$ "
    "LANGUAGE plpgsql",
    "CREATE TRIGGER poison BEFORE INSERT ON asset_cache_states "
    "FOR EACH ROW EXECUTE FUNCTION poison()",
)


def _install_poison(world: World) -> None:
    """A real constraint the catalog enforces: no row for a name starting "poison"."""
    with world.sessions() as s, s.begin():
        if s.get_bind().dialect.name == "sqlite":
            s.execute(text(_SQLITE_POISON))
        else:
            for sql in _PG_POISON:
                s.execute(text(sql))


Requests = list[tuple[str, int | None]]


def _pipeline(world: World, worker: Worker, requests: Requests, **kw: int) -> Pipeline:
    q: queue.Queue[Change | None] = queue.Queue()

    def request(why: str, root_id: int | None = None) -> None:
        requests.append((why, root_id))

    return Pipeline(
        q,
        worker,
        quiet_ms=5,
        max_delay_ms=50,
        root_paths=lambda: [world.root.path],
        request_reconcile=request,
        **kw,  # type: ignore[arg-type]
    )


def _events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e.get("event") == name]


def test_a_poison_batch_is_logged_its_subtrees_reconciled_and_the_pipeline_goes_on(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    _install_poison(world)
    requests: Requests = []
    worker = Worker(world.sessions, [world.root])
    p = _pipeline(world, worker, requests)
    with capture_logs() as logs:
        p.start()
        paths = [world.write(rel) for rel in ("d/a", "d/poison", "d/b", "e/c")]
        for f in paths:
            p.changes.put(Change(Kind.CREATED, str(f)))
        # the good files of the poison batch arrive anyway (the subtree reconcile)
        wait_until(
            lambda: all(world.state(r) for r in ("d/a", "d/b", "e/c")), 10, what="good files"
        )
        after = world.write("later")
        p.changes.put(Change(Kind.CREATED, str(after)))
        wait_until(lambda: world.state("later") is not None, 10, what="the pipeline goes on")
        p.stop()
    assert p.error is None and p.db_ok
    assert world.state("d/poison") is None
    failed = _events(logs, "batch.failed")
    assert failed, logs
    assert str(world.dir / "d/poison") in failed[0]["paths"]
    assert "poison row" in str(failed[0]["error"])
    assert len(failed) <= 2  # the batch, then the one row the reconcile could not write: no loop
    assert not _events(logs, "database.unavailable")


def test_a_bug_in_a_batch_does_not_stop_the_pipeline(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")

    class Buggy(Worker):
        calls = 0

        def apply(self, batch):  # type: ignore[no-untyped-def]
            Buggy.calls += 1
            if Buggy.calls == 1:
                raise RuntimeError("a bug")
            return super().apply(batch)

    requests: Requests = []
    p = _pipeline(world, Buggy(world.sessions, [world.root]), requests)
    with capture_logs() as logs:
        p.start()
        p.changes.put(Change(Kind.CREATED, str(world.write("a"))))
        wait_until(lambda: world.state("a") is not None, 10, what="a, via the reconcile")
        p.changes.put(Change(Kind.CREATED, str(world.write("b"))))
        wait_until(lambda: world.state("b") is not None, 10, what="b")
        p.stop()
    assert p.error is None and not p.thread.is_alive()
    (failed,) = _events(logs, "batch.failed")
    assert "a bug" in str(failed["error"]) and failed["paths"] == [str(world.dir / "a")]


def test_changes_during_an_outage_are_kept_then_applied_and_reconciled(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """The database refuses connections (a real refused port), then answers again."""
    world = make_world(sessions, tmp_path / "lib")
    gone = world.write("gone")
    world.scan()
    down_engine = make_engine(REFUSED_URL)
    worker = Worker(session_factory(down_engine), [world.root])
    requests: Requests = []
    p = _pipeline(world, worker, requests)
    try:
        with capture_logs() as logs:
            p.start()
            gone.unlink()
            p.changes.put(Change(Kind.DELETED, str(gone)))
            wait_until(lambda: not p.db_ok, 10, what="degraded")
            news = [world.write(f"n{i}") for i in range(5)]
            for f in news:  # arriving during the outage: kept, not dropped
                p.changes.put(Change(Kind.CREATED, str(f)))
            wait_until(lambda: p.pending == 6, 10, what="6 changes pending")
            assert p.degraded_reason and "refused" in p.degraded_reason.lower()
            worker.sessions = world.sessions  # the database answers again
            wait_until(lambda: p.db_ok, 5, what="restored")
            wait_until(lambda: all(world.state(f"n{i}") for i in range(5)), 5, what="news")
            p.stop()
    finally:
        down_engine.dispose()
    assert world.state("gone")["is_missing"]  # type: ignore[index]
    assert len(_events(logs, "database.unavailable")) == 1
    assert len(_events(logs, "database.restored")) == 1
    assert ("database restored", world.root.id) in requests  # the affected root is reconciled
    assert p.error is None


def test_past_the_bound_the_detail_goes_but_the_root_is_reconciled(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = make_world(sessions, tmp_path / "lib")
    down_engine = make_engine(REFUSED_URL)
    worker = Worker(session_factory(down_engine), [world.root])
    requests: Requests = []
    p = _pipeline(world, worker, requests, pending_limit=3)
    try:
        with capture_logs() as logs:
            p.start()
            p.changes.put(Change(Kind.CREATED, str(world.write("first"))))
            wait_until(lambda: not p.db_ok, 10, what="degraded")
            for i in range(10):
                p.changes.put(Change(Kind.CREATED, str(world.write(f"n{i}"))))
            wait_until(lambda: p.pending_dropped >= 8, 10, what="detail dropped past the bound")
            assert p.pending <= 3
            worker.sessions = world.sessions
            wait_until(lambda: p.db_ok, 5, what="restored")
            wait_until(lambda: ("database restored", world.root.id) in requests, 5)
            p.stop()
    finally:
        down_engine.dispose()
    assert _events(logs, "pipeline.pending_full")  # logged once, naming the root
    assert len(_events(logs, "pipeline.pending_full")) == 1


def test_a_connection_opened_while_the_catalog_was_read_only_is_not_kept(
    sqlite_url: str, tmp_path: Path
) -> None:
    """SQLite opens a file it cannot write read-only, for good: such a pooled connection must
    be dropped, or writes fail long after the file is writable again."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    engine = make_engine(sqlite_url)
    db = engine.url.database
    assert db is not None
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE roots SET epoch = epoch"))
        engine.dispose()  # the next connection is opened while the file is immutable
        files = [f for f in (db, f"{db}-wal") if os.path.exists(f)]
        subprocess.run(["chattr", "+i", *files], check=True, capture_output=True)
        try:
            with pytest.raises(exc.OperationalError), engine.begin() as conn:
                conn.execute(text("INSERT INTO tags (name) VALUES ('a')"))
        finally:
            subprocess.run(["chattr", "-i", *files], check=True, capture_output=True)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO tags (name) VALUES ('b')"))
    finally:
        engine.dispose()


def test_status_says_degraded_and_why_and_shows_a_crash() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    row = DaemonRow("h", 7, "0.1.0", now, now, "degraded", "database is locked")
    (attention,) = daemon_attention(row, now)
    assert "database is locked" in attention.message
    assert "database is locked" in describe_daemon(row, now)
    crashed = DaemonRow("h", 7, "0.1.0", now, now, "failed", "pipeline crashed: RuntimeError('x')")
    assert describe_daemon(crashed, now).startswith("CRASHED")
    assert "RuntimeError('x')" in describe_daemon(crashed, now)
    assert [a.kind for a in daemon_attention(crashed, now)] == ["crashed"]
