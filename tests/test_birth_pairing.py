"""Birth time tells a moved file from a new one (issue 10): ``statx`` on the real kernel, and the
pairing rule it allows. A vanished path whose content was never hashed (hashing off, or not done
yet) pairs with a new path of the same (device, inode, size, mtime_ns) only when both have the
same birth time: files moved while the daemon was stopped keep their metadata, and 200 other
files created on the reused inodes of 200 deleted ones never take theirs. On a filesystem that
keeps no birth time (ramfs here) the rule is the old one: never paired. Both engines."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd import statx
from assetd.catalog.engine import SessionFactory
from assetd.live.changes import Change, Kind, coalesce
from assetd.live.worker import Worker
from catalog_world import World, make_world

N = 200
MTIME = 1_600_000_000_000_000_000  # one fixed mtime, as tar, rsync or a reproducible build


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(MTIME, MTIME))
    return path.stat().st_ino


# --------------------------------------------------------------------------- statx itself


def test_statx_birth_time_is_kept_by_a_rename_and_new_for_a_new_file(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"x")
    born = statx.birth_or_raise(str(a))
    if born is None:
        pytest.skip(f"{tmp_path} keeps no birth time")
    assert abs(born - os.stat(a).st_ctime_ns) < 1_000_000_000
    os.rename(a, tmp_path / "b")
    assert statx.birth_ns(str(tmp_path / "b")) == born
    os.utime(tmp_path / "b", ns=(MTIME, MTIME))  # times a program sets are not the birth
    assert statx.birth_ns(str(tmp_path / "b")) == born
    deadline = time.monotonic() + 5
    while True:  # a new file, once the filesystem's (coarse) clock has moved on
        c = tmp_path / "c"
        c.write_bytes(b"x")
        if statx.birth_ns(str(c)) != born or time.monotonic() > deadline:
            break
        c.unlink()
    assert statx.birth_ns(str(c)) not in (None, born)


def test_statx_of_a_symlink_is_its_own_unless_followed(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.write_bytes(b"x")
    link = tmp_path / "l"
    link.symlink_to(target)
    own = statx.birth_ns(str(link), follow=False)
    assert statx.birth_ns(str(link)) == statx.birth_ns(str(target))
    if own is not None:
        assert own >= statx.birth_or_raise(str(target))  # type: ignore[operator]


def test_statx_on_a_gone_path_is_none_and_raises_in_the_strict_form(tmp_path: Path) -> None:
    assert statx.birth_ns(str(tmp_path / "nothing")) is None
    with pytest.raises(FileNotFoundError):
        statx.birth_or_raise(str(tmp_path / "nothing"))


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem that keeps no birth time (ramfs: Linux's simple_getattr)."""
    mnt = tmp_path / "ram"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "ramfs", "none", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount ramfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_statx_on_a_filesystem_without_birth_time_is_none(ramfs: Path) -> None:
    (ramfs / "f").write_bytes(b"x")
    assert statx.available()
    assert statx.birth_or_raise(str(ramfs / "f")) is None


# --------------------------------------------------------------------------- pairing


def _confidential(world: World, rel_dir: str) -> None:
    """Tag and annotate every catalogued file below ``rel_dir``, as another program would."""
    with world.sessions() as s, s.begin():
        s.execute(text("INSERT INTO tags (name) VALUES ('confidential')"))
        s.execute(
            text(
                "INSERT INTO asset_info_tags (asset_info_id, tag_name) "
                "SELECT i.id, 'confidential' FROM asset_infos i JOIN asset_cache_states c "
                "ON c.asset_id = i.asset_id WHERE c.file_path LIKE :p"
            ),
            {"p": str(world.dir / rel_dir) + "/%"},
        )
        s.execute(
            text(
                """UPDATE asset_infos SET user_metadata = '{"owner": "finance"}' """
                "WHERE asset_id IN (SELECT asset_id FROM asset_cache_states "
                "WHERE file_path LIKE :p)"
            ),
            {"p": str(world.dir / rel_dir) + "/%"},
        )


def _count(world: World, sql: str, rel_dir: str) -> int:
    with world.sessions() as s:
        return int(
            s.execute(text(sql), {"p": str(world.dir / rel_dir) + "/%", "t": True}).scalar_one()
        )


def _carrying(world: World, rel_dir: str) -> int:
    """Live paths below ``rel_dir`` whose asset carries the tag and the owner's metadata."""
    return _count(
        world,
        "SELECT count(DISTINCT c.id) FROM asset_cache_states c "
        "JOIN asset_infos i ON i.asset_id = c.asset_id "
        "JOIN asset_info_tags t ON t.asset_info_id = i.id "
        "WHERE c.file_path LIKE :p AND c.is_missing <> :t AND t.tag_name = 'confidential' "
        "AND CAST(i.user_metadata AS TEXT) LIKE '%finance%'",
        rel_dir,
    )


def _missing(world: World, rel_dir: str) -> int:
    return _count(
        world,
        "SELECT count(*) FROM asset_cache_states c WHERE c.file_path LIKE :p AND c.is_missing = :t",
        rel_dir,
    )


def _world(sessions: SessionFactory, directory: Path) -> World:
    world = make_world(sessions, directory, tags=())
    probe = directory / ".probe"
    probe.write_bytes(b"")
    has_birth = statx.birth_ns(str(probe)) is not None
    probe.unlink()
    if not has_birth:
        pytest.skip(f"{directory} keeps no birth time")
    return world


MOVE_N = 50


def test_files_moved_while_the_daemon_is_stopped_keep_their_never_hashed_metadata(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = _world(sessions, tmp_path / "lib")
    for i in range(MOVE_N):
        _write(world.dir / f"reports/r{i:03d}.bin", b"R%03d" % i + b"r" * 96)
    world.scan()  # seeded, never hashed (hashing off, or not done yet)
    _confidential(world, "reports")
    (world.dir / "new").mkdir()
    for i in range(MOVE_N):
        os.rename(world.dir / f"reports/r{i:03d}.bin", world.dir / f"new/p{i:03d}.jpg")
    result = world.scan()
    assert _carrying(world, "new") == MOVE_N, "the moved files lost their metadata"
    assert _missing(world, "reports") == 0
    assert result.moved == MOVE_N
    with world.sessions() as s:
        assert s.execute(text("SELECT count(*) FROM assets")).scalar_one() == MOVE_N
        names = s.execute(text("SELECT name FROM asset_infos ORDER BY name")).scalars().all()
    assert names == [f"r{i:03d}.bin" for i in range(MOVE_N)]  # no info named after the seed


def test_a_never_hashed_file_moved_from_outside_the_watch_keeps_its_metadata_live(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = _world(sessions, tmp_path / "lib")
    _write(world.dir / "reports/r.bin", b"R" * 100)
    world.scan()
    _confidential(world, "reports")
    (world.dir / "new").mkdir()
    os.rename(world.dir / "reports/r.bin", world.dir / "new/p.jpg")
    changes = [
        Change(Kind.DELETED, str(world.dir / "reports/r.bin")),
        Change(Kind.CREATED, str(world.dir / "new/p.jpg")),
    ]
    result = Worker(world.sessions, [world.root]).apply(coalesce(changes, roots=[str(world.dir)]))
    assert result.moved == 1
    assert _carrying(world, "new") == 1
    assert _missing(world, "reports") == 0


def test_other_files_on_reused_inodes_never_pair_by_birth_time(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """The issue's case with nothing hashed: 200 files deleted, 200 different ones of the same
    size and mtime created on the inodes ext4 reuses at once: different birth times."""
    world = _world(sessions, tmp_path / "lib")
    old = [_write(world.dir / f"reports/r{i:03d}.bin", b"R%03d" % i + b"r" * 96) for i in range(N)]
    world.scan()
    _confidential(world, "reports")
    shutil.rmtree(world.dir / "reports")
    new = [_write(world.dir / f"new/p{i:03d}.jpg", b"P%03d" % i + b"p" * 96) for i in range(N)]
    if not set(old) & set(new):
        pytest.skip(f"this filesystem ({world.dir}) reused no inode: nothing to pair by guess")
    result = world.scan()
    assert result.moved == 0
    assert _carrying(world, "new") == 0
    assert _missing(world, "reports") == N


def test_without_birth_time_a_never_hashed_move_is_not_paired(
    sessions: SessionFactory, ramfs: Path
) -> None:
    """The old rule where the filesystem keeps no birth time: a guess with nothing to check
    it by is not a move (the old path is missing with its metadata; the new one is new)."""
    world = make_world(sessions, ramfs / "lib", tags=())
    _write(world.dir / "reports/r.bin", b"R" * 100)
    world.scan()
    _confidential(world, "reports")
    (world.dir / "new").mkdir()
    os.rename(world.dir / "reports/r.bin", world.dir / "new/p.jpg")
    result = world.scan()
    assert result.moved == 0
    assert _carrying(world, "new") == 0
    assert _missing(world, "reports") == 1


# --------------------------------------------------------------------------- backfill


def test_a_catalog_from_before_birth_times_gets_them_and_then_pairs(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    world = _world(sessions, tmp_path / "lib")
    for i in range(MOVE_N):
        _write(world.dir / f"reports/r{i:03d}.bin", b"R%03d" % i + b"r" * 96)
    world.scan()
    _confidential(world, "reports")
    with world.sessions() as s, s.begin():  # as a catalog written before birth times were read
        s.execute(text("UPDATE asset_cache_states SET birth_ns = NULL"))
    world.scan()  # the periodic pass fills them in
    with world.sessions() as s:
        assert (
            s.execute(
                text("SELECT count(*) FROM asset_cache_states WHERE birth_ns IS NULL")
            ).scalar_one()
            == 0
        )
    (world.dir / "new").mkdir()
    for i in range(MOVE_N):
        os.rename(world.dir / f"reports/r{i:03d}.bin", world.dir / f"new/p{i:03d}.jpg")
    world.scan()
    assert _carrying(world, "new") == MOVE_N


def test_the_backfill_costs_a_root_without_birth_times_a_few_calls_a_pass(
    sessions: SessionFactory, ramfs: Path
) -> None:
    from assetd.births import PROBE, backfill_birth_times

    world = make_world(sessions, ramfs / "lib", tags=())
    for i in range(100):
        _write(world.dir / f"f{i:03d}", b"x")
    world.scan()
    calls: list[str] = []

    def counting(path: str, *, follow: bool = True) -> tuple[int, int, int | None] | None:
        calls.append(path)
        return statx.identity(path, follow=follow)

    with world.sessions() as s:
        assert backfill_birth_times(s, [world.root], read=counting) == 0
    assert len(calls) == PROBE
