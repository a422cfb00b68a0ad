"""Digests recorded a batch per transaction (issue 15): the commonest case written for the whole
batch at once, every other case by the full rules, and a transaction that ends after
``TX_SECONDS`` with the rest in the next. Both engines, real files."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest
from sqlalchemy import event, select

from assetd.catalog.content import auto_tags_for, next_to_hash
from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets
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
