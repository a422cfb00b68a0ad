"""A share is hashed once (DESIGN §7), in process on both engines: a hash another host computed
for a relative path with the same size and mtime_ns is taken without reading the file; a changed
file is read; claims keep two hosts from reading one file; two hosts recording one content at
once converge on one asset."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from pathlib import Path

import blake3
import pytest
from sqlalchemy import func, select

from assetd.catalog.content import auto_tags_for, next_to_hash
from assetd.catalog.engine import SessionFactory
from assetd.catalog.models import assets, share_claims
from assetd.catalog.models import cache_states as cs
from assetd.catalog.share import claim, shares_of
from assetd.catalog.states import utcnow
from assetd.hashing.background import Hasher
from assetd.hashing.run import hash_pending, record_digests
from assetd.hashing.share import ShareGate
from catalog_world import World, make_world
from helpers import wait_until

MTIME = 1_700_000_000_000_000_000


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def fill(directory: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = directory / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.utime(p, ns=(MTIME, MTIME))


class Reads:
    """A chunk hook counting the files the hasher read."""

    def __init__(self) -> None:
        self.files = 0

    def __call__(self, _n: int) -> None:
        self.files += 1


FILES = {f"d{i % 3}/f{i}.bin": f"content {i}".encode() * 50 for i in range(12)}


@pytest.fixture
def hosts(sessions: SessionFactory, tmp_path: Path) -> tuple[World, World]:
    """Host A and host B, each with a root labelled ``nas`` at its own mount of one share (two
    copies of the same files with the same mtimes: what each host sees of a NAS)."""
    a = make_world(sessions, tmp_path / "a" / "nas", host="host-a", shared="nas")
    b = make_world(sessions, tmp_path / "b" / "mnt", host="host-b", shared="nas")
    fill(a.dir, FILES)
    fill(b.dir, FILES)
    a.scan()
    b.scan()
    return a, b


def asset_of(world: World, rel: str) -> tuple[int, str | None]:
    row = world.state(rel)
    assert row is not None
    with world.sessions() as s:
        digest = s.execute(select(assets.c.hash).where(assets.c.id == row["asset_id"])).scalar()
    return int(row["asset_id"]), digest


def test_a_share_another_host_hashed_is_taken_without_reading(hosts: tuple[World, World]) -> None:
    a, b = hosts
    reads_a, reads_b = Reads(), Reads()
    hash_pending(a.sessions, [a.root], hook=reads_a, isolate=False)
    assert reads_a.files == len(FILES)
    result = hash_pending(b.sessions, [b.root], hook=reads_b, isolate=False)
    assert reads_b.files == 0, "host B read files host A had hashed"
    assert result.files == len(FILES) and result.backlog_after == (0, 0)
    for rel, data in FILES.items():
        assert asset_of(a, rel) == asset_of(b, rel)
        assert asset_of(b, rel)[1] == b3(data)
        row = b.state(rel)
        assert row is not None
        assert (row["hashed_size_bytes"], row["hashed_mtime_ns"]) == (len(data), MTIME)
    with b.sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == len(FILES)


def test_a_changed_file_is_read_again(hosts: tuple[World, World]) -> None:
    a, b = hosts
    hash_pending(a.sessions, [a.root], isolate=False)
    changed = "d0/f0.bin"
    data = FILES[changed].upper()  # same size, new content and mtime on B's side
    (b.dir / changed).write_bytes(data)
    b.scan()
    reads = Reads()
    hash_pending(b.sessions, [b.root], hook=reads, isolate=False)
    assert reads.files == 1
    assert asset_of(b, changed)[1] == b3(data)
    assert asset_of(a, changed)[1] == b3(FILES[changed])


def test_a_hash_flagged_for_verify_is_not_trusted(hosts: tuple[World, World]) -> None:
    a, b = hosts
    hash_pending(a.sessions, [a.root], isolate=False)
    with a.sessions() as s, s.begin():
        s.execute(cs.update().where(cs.c.root_id == a.root.id).values(needs_verify=True))
    reads = Reads()
    hash_pending(b.sessions, [b.root], hook=reads, isolate=False)
    assert reads.files == len(FILES)


def test_an_unshared_root_trusts_nothing(sessions: SessionFactory, tmp_path: Path) -> None:
    a = make_world(sessions, tmp_path / "a", host="host-a", shared="nas")
    b = make_world(sessions, tmp_path / "b", host="host-b")
    fill(a.dir, FILES)
    fill(b.dir, FILES)
    a.scan()
    b.scan()
    hash_pending(a.sessions, [a.root], isolate=False)
    reads = Reads()
    hash_pending(b.sessions, [b.root], hook=reads, isolate=False)
    assert reads.files == len(FILES)


def test_a_claimed_file_waits_for_its_claimer(hosts: tuple[World, World]) -> None:
    a, b = hosts
    gate_a = ShareGate(a.sessions, a.host, [a.root])
    gate_b = ShareGate(b.sessions, b.host, [b.root])
    with a.sessions() as s:
        jobs_a = next_to_hash(s, roots=[a.root.id], limit=100)
        jobs_b = next_to_hash(s, roots=[b.root.id], limit=100)
    first = gate_a.sift(jobs_a[:5])
    assert len(first.read) == 5 and not first.waiting
    second = gate_b.sift(jobs_b)
    assert len(second.waiting) == 5 and len(second.read) == len(FILES) - 5
    # A records its five: B finds them trusted on its next look, reading none of them
    record_digests(
        a.sessions,
        [(j, b3((a.dir / os.path.relpath(j.path, a.dir)).read_bytes())) for j in first.read],
        auto_tags=auto_tags_for([a.root]),
    )
    third = gate_b.sift(second.waiting)
    assert len(third.trusted) == 5 and not third.read and not third.waiting
    gate_a.release()
    with a.sessions() as s:
        left = s.execute(select(func.count()).select_from(share_claims)).scalar()
    assert left == len(FILES) - 5  # B's claims stay until B is idle


def test_an_expired_claim_is_taken_over(hosts: tuple[World, World]) -> None:
    a, b = hosts
    with a.sessions() as s:
        [job_a] = next_to_hash(s, roots=[a.root.id], limit=1)
        [job_b] = next_to_hash(s, roots=[b.root.id], limit=1)
    long_ago = utcnow() - dt.timedelta(hours=1)
    with a.sessions() as s, s.begin():
        assert claim(s, a.host, [job_a], shares_of([a.root]), now=long_ago) == {job_a.id}
    with b.sessions() as s, s.begin():
        assert claim(s, b.host, [job_b], shares_of([b.root]), now=utcnow()) == {job_b.id}


def test_two_hosts_recording_one_content_at_once_converge(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """Host A's transaction gives the digest to its asset; host B records the same digest for
    its own asset meanwhile (its insert of the unique hash waits on A's, then fails and is run
    again): one asset, both paths on it."""
    a = make_world(sessions, tmp_path / "a", host="host-a", shared="nas")
    b = make_world(sessions, tmp_path / "b", host="host-b", shared="nas")
    data = b"one content" * 100
    fill(a.dir, {"x.bin": data})
    fill(b.dir, {"y.bin": data})  # another path: no trust, a real duplicate
    a.scan()
    b.scan()
    with sessions() as s:
        [job_a] = next_to_hash(s, roots=[a.root.id], limit=1)
        [job_b] = next_to_hash(s, roots=[b.root.id], limit=1)
    from assetd.catalog.content import apply_hash

    holder = sessions()
    tx = holder.begin()
    apply_hash(holder, job_a.id, b3(data), job_a.size, job_a.mtime_ns, auto_tags=lambda *_: ())
    done: list[list[str]] = []
    other = threading.Thread(
        target=lambda: done.append(
            record_digests(sessions, [(job_b, b3(data))], auto_tags=auto_tags_for([b.root]))
        )
    )
    if sessions.kw["bind"].dialect.name == "postgresql":
        other.start()
        wait_until(lambda: _waiting_on_lock(sessions), timeout=10)
        tx.commit()
    else:  # SQLite: one writer at a time; B runs after A
        tx.commit()
        other.start()
    other.join(20)
    holder.close()
    assert done and done[0][0] in ("merged", "hashed")
    assert asset_of(a, "x.bin") == asset_of(b, "y.bin")
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(assets)).scalar() == 1


def _waiting_on_lock(sessions: SessionFactory) -> bool:
    from sqlalchemy import text

    with sessions() as s:
        n = s.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return bool(n)


def test_the_daemons_hasher_takes_a_hashed_share_without_reading(
    hosts: tuple[World, World],
) -> None:
    a, b = hosts
    hash_pending(a.sessions, [a.root], isolate=False)
    reads = Reads()
    hasher = Hasher(
        b.sessions, [b.root], hook=reads, isolate=False, low_priority=False, host=b.host
    )
    hasher.start()
    try:
        wait_until(lambda: hasher.hashed == len(FILES), timeout=20)
    finally:
        hasher.stop()
    assert reads.files == 0 and hasher.bytes == 0
    for rel in FILES:
        assert asset_of(a, rel) == asset_of(b, rel)


def test_two_hashers_on_a_fresh_share_read_each_file_once(hosts: tuple[World, World]) -> None:
    a, b = hosts
    reads_a, reads_b = Reads(), Reads()
    hashers = [
        Hasher(
            w.sessions, [w.root], hook=r, isolate=False, low_priority=False, host=w.host, batch=4
        )
        for w, r in ((a, reads_a), (b, reads_b))
    ]
    for h in hashers:
        h.start()
    try:
        wait_until(lambda: all(h.hashed == len(FILES) for h in hashers), timeout=30)
    finally:
        for h in hashers:
            h.stop()
    assert reads_a.files + reads_b.files == len(FILES)
    for rel in FILES:
        assert asset_of(a, rel) == asset_of(b, rel)
    shutil.rmtree(a.dir)
