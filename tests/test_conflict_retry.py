"""Transactions that lose a race with another host are run again (catalog/retry.py): a real
PostgreSQL deadlock, ordered (the loser is the one whose ``deadlock_timeout`` fires first)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from assetd.catalog.engine import make_engine
from assetd.catalog.retry import is_conflict, is_lock_conflict, run_retrying
from helpers import wait_until

pytestmark = pytest.mark.pg


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE race (id int PRIMARY KEY, n int NOT NULL)"))
        conn.execute(text("INSERT INTO race VALUES (1, 0), (2, 0)"))
    yield engine
    engine.dispose()


def _waiting(engine: Engine) -> bool:
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return bool(n)


def test_a_transaction_that_loses_a_deadlock_runs_again(pg: Engine) -> None:
    holding_2 = threading.Event()
    attempts: list[int] = []
    retried: list[str] = []
    outcome: list[object] = []

    def work() -> str:
        attempts.append(1)
        with pg.begin() as conn:
            conn.execute(text("SET LOCAL deadlock_timeout = '500ms'"))
            conn.execute(text("UPDATE race SET n = n + 1 WHERE id = 2"))
            holding_2.set()
            conn.execute(text("UPDATE race SET n = n + 1 WHERE id = 1"))
        return "done"

    def loser() -> None:
        try:
            outcome.append(
                run_retrying(work, on_retry=lambda err, n: retried.append(type(err).__name__))
            )
        except Exception as err:  # reported by the assertion below
            outcome.append(err)

    with pg.connect() as conn:
        tx = conn.begin()
        conn.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        conn.execute(text("UPDATE race SET n = n + 10 WHERE id = 1"))
        thread = threading.Thread(target=loser)
        thread.start()
        assert holding_2.wait(10)
        wait_until(lambda: _waiting(pg), 5, what="the other transaction waits on row 1")
        conn.execute(text("UPDATE race SET n = n + 10 WHERE id = 2"))  # the cycle closes
        tx.commit()
    thread.join(20)
    assert outcome == ["done"], outcome
    assert len(attempts) == 2 and retried == ["OperationalError"]
    with pg.connect() as conn:
        assert conn.execute(text("SELECT n FROM race ORDER BY id")).scalars().all() == [11, 11]


def test_what_counts_as_a_conflict() -> None:
    class Raw(Exception):
        def __init__(self, sqlstate: str) -> None:
            self.sqlstate = sqlstate

    assert is_conflict(Raw("23505")) and not is_lock_conflict(Raw("23505"))
    assert is_conflict(Raw("40P01")) and is_lock_conflict(Raw("40001"))
    assert not is_conflict(Raw("42P01")) and not is_conflict(ValueError())
    calls: list[int] = []

    def fails() -> None:
        calls.append(1)
        raise Raw("40001")

    with pytest.raises(Raw):
        run_retrying(fails, attempts=3, pause=0.0)
    assert len(calls) == 3


def test_a_copy_that_collides_raises_sqlalchemys_integrity_error(pg: Engine) -> None:
    """The seed's COPY (sqlutil.insert_rows(copy=True)) fails like an INSERT would: a unique-key
    collision is SQLAlchemy's IntegrityError, which is_conflict and the callers recognise."""
    from sqlalchemy.exc import IntegrityError

    from assetd.catalog.engine import session_factory
    from assetd.catalog.models import assets
    from assetd.catalog.sqlutil import insert_rows

    sessions = session_factory(pg)
    with sessions() as s, s.begin():
        assert insert_rows(s, assets, ("id", "size_bytes"), [(1, 10), (2, 20)], copy=True) == 2
    with pytest.raises(IntegrityError) as caught, sessions() as s, s.begin():
        insert_rows(s, assets, ("id", "size_bytes"), [(3, 30), (1, 10)], copy=True)
    assert is_conflict(caught.value)
    with pg.connect() as conn:
        assert conn.execute(text("SELECT sum(size_bytes) FROM assets")).scalar() == 30


def test_a_bulk_seed_racing_another_writers_seed_of_the_same_paths_keeps_one_row_each(
    pg_url: str, tmp_path: Path
) -> None:
    """Two writers seed overlapping paths at once: the second's COPY waits on the first's
    uncommitted rows, collides once they commit, and its savepoint gives way to INSERT ... ON
    CONFLICT DO NOTHING (seed._insert_cache_states). One row per path, the first writer's; no
    orphan asset; no error."""
    from assetd.catalog.engine import session_factory
    from assetd.catalog.models import assets
    from assetd.catalog.models import cache_states as cs
    from assetd.catalog.seed import (
        COPY_MIN_ROWS,
        BulkInsertResult,
        SeedSpec,
        batch_insert_seed_assets,
    )
    from catalog_world import make_world

    engine = make_engine(pg_url)
    sessions = session_factory(engine)
    world = make_world(sessions, tmp_path / "lib")
    n = COPY_MIN_ROWS * 2
    specs = [SeedSpec(world.root.id, f"{world.dir}/f{i:05d}", i, i) for i in range(n)]
    first, second = specs[: n // 2 + 100], specs[n // 2 - 100 :]  # 200 paths in both
    outcome: list[BulkInsertResult | Exception] = []

    def later() -> None:
        try:
            with sessions() as s, s.begin():
                outcome.append(
                    batch_insert_seed_assets(s, second, roots=[world.root.id], known_new=True)
                )
        except Exception as err:  # reported by the assertion below
            outcome.append(err)

    try:
        with sessions() as s, s.begin():
            batch_insert_seed_assets(s, first, roots=[world.root.id], known_new=True)
            thread = threading.Thread(target=later)
            thread.start()
            wait_until(lambda: _waiting(engine), 10, what="the second seed waits on the first")
        thread.join(30)
        assert len(outcome) == 1, outcome
        result = outcome[0]
        assert isinstance(result, BulkInsertResult), result
        assert (result.inserted, result.already_present) == (len(second) - 200, 200)
        with sessions() as s:
            assert s.execute(select(func.count()).select_from(cs)).scalar() == n
            assert s.execute(select(func.count()).select_from(assets)).scalar() == n
    finally:
        engine.dispose()
