"""Seed inserts: new files become unhashed assets with a cache state, an info and automatic tags.

Hashing comes later (the content identity work); a seed costs one stat and four bulk inserts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assetd.catalog.models import asset_info_tags, asset_infos, assets, tags
from assetd.catalog.models import cache_states as cs
from assetd.catalog.sqlutil import allocate_ids, chunked, insert_rows, is_postgresql, select_in
from assetd.catalog.states import Reason, refresh_cache_states, utcnow


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """A file to catalogue: where it is, its figures, and its automatic tags."""

    root_id: int
    path: str  # catalog form (fsutil.encode_path)
    size: int
    mtime_ns: int
    device: int | None = None
    inode: int | None = None
    raw: bytes | None = None  # exact bytes, only for a non-UTF-8 name
    tags: tuple[str, ...] = ()
    is_symlink: bool = False  # catalogued as a link: its own figures, never hashed
    birth_ns: int | None = None  # statx birth time where the filesystem keeps one


@dataclass(frozen=True, slots=True)
class BulkInsertResult:
    inserted: int = 0
    already_present: int = 0
    restored: int = 0
    refused: int = 0  # specs for roots outside ``roots``: never written

    def __add__(self, other: BulkInsertResult) -> BulkInsertResult:
        return BulkInsertResult(
            self.inserted + other.inserted,
            self.already_present + other.already_present,
            self.restored + other.restored,
            self.refused + other.refused,
        )


def _existing(session: Session, specs: list[SeedSpec]) -> dict[tuple[int, str], bool]:
    """(root_id, path) -> is_missing for the specs that already have a row."""
    found: dict[tuple[int, str], bool] = {}
    by_root: dict[int, list[str]] = {}
    for s in specs:
        by_root.setdefault(s.root_id, []).append(s.path)
    sql = (
        "SELECT file_path, is_missing FROM asset_cache_states "
        "WHERE root_id = {p} AND file_path {in}"
    )
    for root_id, paths in by_root.items():
        for path, missing in select_in(session, sql, paths, (root_id,)):
            found[(root_id, path)] = bool(missing)
    return found


def batch_insert_seed_assets(
    session: Session,
    specs: Iterable[SeedSpec],
    *,
    roots: Collection[int],
    now: dt.datetime | None = None,
    known_new: bool = False,
) -> BulkInsertResult:
    """Insert new files as unhashed seed assets; restore those that exist as missing.

    ON CONFLICT DO NOTHING semantics: a path that already has a live row is left as it is
    (counted ``already_present``); one that has a missing row is restored (with new figures
    and ``needs_verify`` if it differs). Runs in the caller's transaction.

    ``known_new``: the caller (reconcile) just saw these paths absent from the catalog, so the
    look-up of existing rows is skipped; a row another writer inserted meanwhile still wins
    (ON CONFLICT DO NOTHING), and is counted ``already_present``.
    """
    now = now or utcnow()
    allowed = set(roots)
    wanted: dict[tuple[int, str], SeedSpec] = {}
    refused = 0
    for spec in specs:
        if spec.root_id in allowed:
            wanted[(spec.root_id, spec.path)] = spec
        else:
            refused += 1
    ordered = [wanted[k] for k in sorted(wanted)]
    existing = {} if known_new else _existing(session, ordered)
    to_restore = [s for s in ordered if existing.get((s.root_id, s.path))]
    present = sum(1 for s in ordered if existing.get((s.root_id, s.path)) is False)
    new = [s for s in ordered if (s.root_id, s.path) not in existing]
    restored = 0
    for root_id in sorted({s.root_id for s in to_restore}):
        r, _ = refresh_cache_states(
            session,
            [s for s in to_restore if s.root_id == root_id],
            roots=[root_id],
            only_missing=True,
            reason=Reason.SEED,
            now=now,
        )
        restored += r
    inserted = 0
    for root_id in sorted({s.root_id for s in new}):
        files = [_new_file(s) for s in new if s.root_id == root_id]
        inserted += _insert_new(session, root_id, files)
    return BulkInsertResult(
        inserted=inserted,
        already_present=present + (len(new) - inserted),
        restored=restored,
        refused=refused,
    )


NewFile: TypeAlias = tuple[
    str, bytes | None, int, int, int | None, int | None, bool, int | None, tuple[str, ...]
]
"""A file to seed as :func:`insert_new_files` takes it: ``(path, raw, size, mtime_ns, device,
inode, is_symlink, birth_ns, tags)``, the fields of :class:`SeedSpec` but the root, without an
object per file (a first scan seeds every file of a tree)."""


def insert_new_files(session: Session, root_id: int, files: list[NewFile]) -> int:
    """Seed ``files`` of the root ``root_id``: paths the caller has just seen absent from the
    catalog (reconcile, where no row is under a directory), each once, in path order. Returns
    how many were inserted: a path another writer seeded meanwhile keeps that writer's row (ON
    CONFLICT DO NOTHING), as with ``known_new`` in :func:`batch_insert_seed_assets`. Runs in the
    caller's transaction."""
    return _insert_new(session, root_id, files) if files else 0


def _new_file(s: SeedSpec) -> NewFile:
    return (s.path, s.raw, s.size, s.mtime_ns, s.device, s.inode, s.is_symlink, s.birth_ns, s.tags)


def _insert_new(session: Session, root_id: int, new: list[NewFile]) -> int:
    """Four executemany inserts with ids allocated up front (no RETURNING round trips); on
    PostgreSQL the three that cannot collide are ``COPY``, and the cache states too unless
    another writer's row collides (:func:`_insert_cache_states`).

    Timestamps and ``state_reason`` come from the server-side defaults ('seed', now)."""
    asset_ids = allocate_ids(session, assets, len(new))
    insert_rows(
        session,
        assets,
        ("id", "size_bytes"),
        [(a, f[2]) for a, f in zip(asset_ids, new, strict=True)],
        copy=True,
    )
    inserted = _insert_cache_states(
        session,
        [
            (a, root_id, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7])
            for a, f in zip(asset_ids, new, strict=True)
        ],
    )
    pairs = list(zip(asset_ids, new, strict=True))
    if inserted != len(new):  # another writer seeded some of these paths meanwhile
        pairs = _drop_orphans(session, pairs)
    info_ids = allocate_ids(session, asset_infos, len(pairs))
    insert_rows(
        session,
        asset_infos,
        ("id", "asset_id", "name"),
        [(i, a, f[0].rpartition("/")[2]) for i, (a, f) in zip(info_ids, pairs, strict=True)],
        copy=True,
    )
    tag_rows = [
        (i, t, "automatic") for i, (_, f) in zip(info_ids, pairs, strict=True) for t in f[8]
    ]
    if tag_rows:
        names = sorted({r[1] for r in tag_rows})
        insert_rows(session, tags, ("name",), [(n,) for n in names], ignore_conflict_on=("name",))
        insert_rows(
            session,
            asset_info_tags,
            ("asset_info_id", "tag_name", "origin"),
            tag_rows,
            copy=True,
        )
    return len(pairs)


_CS_COLUMNS = (
    "asset_id",
    "root_id",
    "file_path",
    "file_path_raw",
    "size_bytes",
    "mtime_ns",
    "device",
    "inode",
    "is_symlink",
    "birth_ns",
)
COPY_MIN_ROWS = 500  # below this, a savepoint and a COPY cost more than one INSERT saves
_UNIQUE_VIOLATION = "23505"


def _insert_cache_states(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """The new paths' cache states; returns how many were inserted (a path another writer
    seeded meanwhile keeps that writer's row).

    PostgreSQL, ``COPY_MIN_ROWS`` or more: ``COPY`` inside a savepoint, which no row collides
    with unless another writer seeded one of these paths since the caller looked (the first
    scan's ``INSERT ... SELECT FROM unnest() ON CONFLICT DO NOTHING`` was a third of its time;
    20,000 rows took 3.5-4.0 s by it against 1.6-2.8 s by COPY, alternated on one loaded
    server). On a collision (unique violation of ``(root_id,
    file_path)``) the savepoint is rolled back and the rows go through that INSERT instead, so
    the outcome is the same; any other error is raised as before.
    """
    if is_postgresql(session) and len(rows) >= COPY_MIN_ROWS:
        try:
            with session.begin_nested():
                return insert_rows(session, cs, _CS_COLUMNS, rows, copy=True)
        except IntegrityError as err:
            if getattr(err.orig, "sqlstate", None) != _UNIQUE_VIOLATION:
                raise
    return insert_rows(session, cs, _CS_COLUMNS, rows, ignore_conflict_on=("root_id", "file_path"))


def _drop_orphans(session: Session, pairs: list[tuple[int, NewFile]]) -> list[tuple[int, NewFile]]:
    """Remove the assets this call created whose cache state lost the race to another writer."""
    ids = [a for a, _ in pairs]
    kept: set[int] = set()
    for chunk in chunked(ids):
        kept.update(
            session.execute(select(cs.c.asset_id).where(cs.c.asset_id.in_(list(chunk)))).scalars()
        )
    orphans = [a for a in ids if a not in kept]
    for chunk in chunked(orphans):
        session.execute(delete(assets).where(assets.c.id.in_(list(chunk))))
    return [(a, s) for a, s in pairs if a in kept]
