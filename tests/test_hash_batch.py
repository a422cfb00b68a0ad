"""Digests recorded a batch per transaction (issue 15): the commonest case written for the whole
batch at once, every other case by the full rules, and a transaction that ends after
``TX_SECONDS`` with the rest in the next. Both engines, real files."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest
from sqlalchemy import event, func, select

from assetd.catalog.content import auto_tags_for, next_to_hash
from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.hashing import run
from assetd.hashing.run import record_digests
from catalog_world import World, make_world


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


@pytest.fixture
def world(sessions: SessionFactory, tmp_path: Path) -> World:
    return make_world(sessions, tmp_path / "lib")


def _hash_of(world: World, rel: str) -> tuple[int, str | None]:
    row = world.state(rel)
    assert row is not None
    with world.sessions() as s:
        digest = s.execute(select(assets.c.hash).where(assets.c.id == row["asset_id"])).scalar()
    return row["asset_id"], digest


def _record_all(world: World) -> list[str]:
    with world.sessions() as s:
        jobs = next_to_hash(s, roots=[world.root.id], limit=100)
    items = [(job, b3(Path(job.path).read_bytes())) for job in jobs]
    return record_digests(world.sessions, items, auto_tags=auto_tags_for([world.root]))


def test_one_batch_mixes_the_plain_case_with_repeated_and_known_digests(world: World) -> None:
    world.write("known.bin", b"known")
    world.scan()
    assert _record_all(world) == ["hashed"]
    for rel, data in (
        ("a.bin", b"a"),  # plain: written with the batch
        ("dup1.bin", b"twice"),  # the same digest twice in the batch: the full rules
        ("dup2.bin", b"twice"),
        ("copy.bin", b"known"),  # another asset has the digest already: merged into it
        ("z.bin", b"z"),  # plain, after the others
    ):
        world.write(rel, data)
    world.scan()
    outcomes = _record_all(world)
    assert sorted(outcomes) == ["hashed", "hashed", "hashed", "merged", "merged"]
    assert _hash_of(world, "a.bin")[1] == b3(b"a") and _hash_of(world, "z.bin")[1] == b3(b"z")
    assert _hash_of(world, "dup1.bin") == _hash_of(world, "dup2.bin")
    assert _hash_of(world, "dup1.bin")[1] == b3(b"twice")
    assert _hash_of(world, "copy.bin") == _hash_of(world, "known.bin")
    assert _record_all(world) == []  # nothing left to hash


def test_a_transaction_ends_after_tx_seconds_and_the_rest_follow(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        world.write(f"{name}.bin", name.encode())
    world.scan()
    commits: list[int] = []
    engine = world.sessions.kw["bind"]

    def on_commit(conn: object) -> None:
        commits.append(1)

    event.listen(engine, "commit", on_commit)
    try:
        monkeypatch.setattr(run, "TX_SECONDS", 0.0)  # every digest is past the bound
        assert _record_all(world) == ["hashed", "hashed", "hashed"]
        assert len(commits) == 3  # one digest per transaction
        for name in ("a", "b", "c"):
            assert _hash_of(world, f"{name}.bin")[1] == b3(name.encode())
    finally:
        event.remove(engine, "commit", on_commit)


def test_a_page_of_work_does_not_visit_every_row_of_the_root(
    sqlite_url: str, tmp_path: Path
) -> None:
    """``next_to_hash`` pages by id from ``after_id``: a page's cost follows the rows it walks,
    not the rows of the root. On the index of (root, is_missing, path) SQLite read every live
    row of the root and sorted them by id for each page: a pass over a 100,000-file backlog
    read the root 400 times. Counted in SQLite virtual-machine steps (SQLite only)."""
    from assetd.catalog import batch_insert_seed_assets
    from assetd.catalog.engine import make_engine, session_factory
    from assetd.catalog.seed import SeedSpec

    engine = make_engine(sqlite_url)
    world = make_world(session_factory(engine), tmp_path / "lib")
    n = 20_000
    specs = [SeedSpec(world.root.id, f"{world.dir}/d{i % 50}/f{i:06d}", i, i) for i in range(n)]
    with world.sessions() as s, s.begin():
        batch_insert_seed_assets(s, specs, roots=[world.root.id])
    with world.sessions() as s:
        [(top,)] = s.execute(select(func.max(cs.c.id))).all()
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0  # go on

    with world.sessions() as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        raw.set_progress_handler(tick, 100)  # called every 100 virtual-machine steps
        try:
            jobs = next_to_hash(s, roots=[world.root.id], limit=10, after_id=top - 100)
        finally:
            raw.set_progress_handler(None, 0)
    engine.dispose()
    assert [j.id for j in jobs] == list(range(top - 99, top - 89))
    # reading the root's 20,000 live rows takes several steps per row (over 100,000)
    assert counted[0] * 100 < 5_000, counted[0] * 100
