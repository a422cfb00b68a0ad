"""``assetd roots move``: a root's library moved to another directory (a new disk) keeps its
catalog. :func:`compare_trees` checks that the new directory holds the same files (relative
paths and sizes, and a sample of hashes); :func:`relocate_root` rewrites every path of the root
in one transaction, keeping every row, asset, info and tag (no reseed, no rehash)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from assetd.catalog.models import assets
from assetd.catalog.models import cache_states as cs
from assetd.catalog.models import roots as roots_table
from assetd.catalog.moves import rewrite_prefix
from assetd.catalog.sqlutil import normalize_prefix, under_prefix
from assetd.fsutil import IgnoreRules
from assetd.walk import WalkProblem, list_files_recursively

HASH_SAMPLE = 20

Hasher = Callable[[str], str]
"""``os_path -> "blake3:<hex>"`` (:func:`assetd.hashing.run.hash_file` fits)."""


@dataclass(slots=True)
class Comparison:
    """How the new directory compares with the root's rows."""

    live: int = 0  # live rows compared
    missing_back: int = 0  # missing rows whose file is in the new directory
    other_mtime: int = 0  # same size, another mtime (a copy that did not keep times)
    hashes_checked: int = 0
    difference: str | None = None  # the first difference found; None: the same files
    problems: list[WalkProblem] = field(default_factory=list)


def _relative(path: str, prefix: str) -> str:
    return path[len(prefix) + 1 :] if prefix != "/" else path[1:]


@dataclass(frozen=True, slots=True)
class RowFigures:
    """What the comparison needs of one row of the root."""

    path: str
    raw: bytes | None
    size: int
    mtime_ns: int
    is_missing: bool
    needs_verify: bool
    hash: str | None


def load_rows(session: Session, root_id: int, old_path: str) -> list[RowFigures]:
    """The rows of root ``root_id`` below ``old_path``, by path."""
    query = (
        select(
            cs.c.file_path,
            cs.c.file_path_raw,
            cs.c.size_bytes,
            cs.c.mtime_ns,
            cs.c.is_missing,
            cs.c.needs_verify,
            assets.c.hash,
        )
        .join(assets, assets.c.id == cs.c.asset_id)
        .where(cs.c.root_id == root_id, under_prefix(cs.c.file_path, normalize_prefix(old_path)))
        .order_by(cs.c.file_path)
    )
    return [
        RowFigures(
            str(r[0]),
            bytes(r[1]) if r[1] is not None else None,
            int(r[2]),
            int(r[3]),
            bool(r[4]),
            bool(r[5]),
            r[6],
        )
        for r in session.execute(query)
    ]


def compare_trees(
    rows: list[RowFigures],
    old_path: str,
    new_path: str,
    *,
    ignore: IgnoreRules,
    follow_symlinks: bool,
    hasher: Hasher,
    sample: int = HASH_SAMPLE,
) -> Comparison:
    """Compare the live ``rows`` (below ``old_path``) with the files below ``new_path``: the
    same relative paths with the same sizes, and for up to ``sample`` hashed rows (spread over
    the tree), the same blake3 hash. Missing rows whose file is in the new directory are fine
    (a reconcile restores them). Holds no transaction: the walk may take long."""
    result = Comparison()
    old, new = normalize_prefix(old_path), normalize_prefix(new_path)
    live = {_relative(r.path, old): (r.size, r.mtime_ns) for r in rows if not r.is_missing}
    missing = {_relative(r.path, old) for r in rows if r.is_missing}
    result.live = len(live)
    on_disk: dict[str, tuple[int, int]] = {}
    for f in list_files_recursively(
        new, ignore=ignore, follow_symlinks=follow_symlinks, on_problem=result.problems.append
    ):
        on_disk[_relative(f.path, new)] = (f.size, f.mtime_ns)
    result.difference = _first_difference(live, missing, on_disk, result)
    if result.difference is not None:
        return result
    hashed = [r for r in rows if r.hash is not None and not r.is_missing and not r.needs_verify]
    step = max(1, len(hashed) // sample) if sample > 0 else 0
    for r in hashed[::step][:sample] if step else []:
        rel = _relative(r.path, old)
        if r.raw is not None:  # a non-UTF-8 name: its exact bytes
            target = os.fsdecode(os.fsencode(new) + r.raw[len(os.fsencode(old)) :])
        else:
            target = f"{new}/{rel}" if new != "/" else f"/{rel}"
        digest = hasher(target)
        result.hashes_checked += 1
        if digest != r.hash:
            result.difference = f"content differs: {rel} (catalog {r.hash}, new directory {digest})"
            return result
    return result


def _first_difference(
    live: dict[str, tuple[int, int]],
    missing: set[str],
    on_disk: dict[str, tuple[int, int]],
    result: Comparison,
) -> str | None:
    for rel in sorted(live.keys() | on_disk.keys()):
        want, have = live.get(rel), on_disk.get(rel)
        if want is None:
            if rel in missing:
                result.missing_back += 1
                continue
            return f"only in the new directory: {rel}"
        if have is None:
            return f"only in the catalog (not in the new directory): {rel}"
        if want[0] != have[0]:
            return f"size differs: {rel} (catalog {want[0]} bytes, new directory {have[0]})"
        if want[1] != have[1]:
            result.other_mtime += 1
    return None


def rows_under(session: Session, root_id: int, path: str) -> int:
    """Rows of root ``root_id`` below ``path`` (any state)."""
    return int(
        session.execute(
            select(func.count()).where(cs.c.root_id == root_id, under_prefix(cs.c.file_path, path))
        ).scalar_one()
    )


def relocate_root(
    session: Session,
    root_id: int,
    old_path: str,
    new_path: str,
    *,
    device: int | None,
    is_mount: bool,
) -> int:
    """Rewrite the path prefix of every row of root ``root_id`` below ``old_path`` to
    ``new_path`` (``file_path_raw`` too), and the root's own path, device and mount status, in
    the caller's transaction. Row states (live, missing, reasons) are kept. Returns rows moved.

    The caller has checked that no row of the root lies below ``new_path`` already."""
    new = normalize_prefix(new_path)
    moved = rewrite_prefix(session, root_id, old_path, new)
    session.execute(
        update(roots_table)
        .where(roots_table.c.id == root_id)
        .values(path=new, device=device, is_mount=is_mount)
    )
    return moved
