"""Reconcile never undoes a live batch (DESIGN §2): a reconcile write is decided on facts no
older than the transaction it is written in. The interleaving is ordered through the stat seam:
the re-stat sees the file gone, then (between that re-stat and the write) a live batch recreates
the file and restores its row; the reconcile must not then mark it missing. Both engines."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import SessionFactory
from assetd.live.changes import Batch
from assetd.live.worker import Worker
from assetd.reconcile import sync_cache_states_with_filesystem
from catalog_world import World, make_world
from helpers import wait_until

GRACE_S = 1.5
"""How long the seam lets the live batch try to commit. With the fix it cannot (the reconcile's
transaction holds the write lock or the row lock), so the seam goes on once the worker is seen
waiting (PostgreSQL: pg_stat_activity) or after this grace (SQLite has no such view)."""


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _worker_waits_on_a_lock(world: World) -> bool:
    with world.sessions() as s:
        if s.get_bind().dialect.name != "postgresql":
            return False
        n = s.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
        return bool(n)


def test_live_restore_between_restat_and_write_is_not_undone(world: World) -> None:
    racy = world.write("racy.bin", b"r")
    world.write("other.bin", b"o")
    world.scan()
    worker = Worker(world.sessions, [world.root])
    racy.unlink()
    done = threading.Event()
    errors: list[BaseException] = []

    def live_batch() -> None:
        try:
            racy.write_bytes(b"r")  # the file comes back...
            worker.apply(Batch(touched=frozenset({str(racy)}), size=1))  # ...and is restored
        except BaseException as err:
            errors.append(err)
        finally:
            done.set()

    is_pg = world.sessions().get_bind().dialect.name == "postgresql"

    def restat(path: str) -> os.stat_result:
        if path != str(racy):
            return os.stat(path)
        try:
            return os.stat(path)  # the re-stat's fact: FileNotFoundError
        finally:  # between the re-stat and the write: a live batch commits if it can
            threading.Thread(target=live_batch).start()
            if is_pg:
                wait_until(
                    lambda: done.is_set() or _worker_waits_on_a_lock(world),
                    timeout=30,
                    what="the live batch committed or waiting on the reconcile's row lock",
                )
            else:
                done.wait(GRACE_S)

    with world.sessions() as s:
        sync_cache_states_with_filesystem(s, [world.root], stat=restat)
    wait_until(done.is_set, 30, what="live batch finished")
    assert not errors, errors
    row = world.state("racy.bin")
    assert row is not None
    assert row["is_missing"] is False, "reconcile undid the live batch's restore"
