"""The re-scan's fast path (issue 15): the walk reading directories ahead on threads, by file
descriptor, in runs of tuples; the diff over runs and pages; the ignore rules per listing. Each
is checked against the plain path it replaces, on real directories."""

from __future__ import annotations

import os
import threading
import types
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from assetd.diff import CatalogRow, DiffCounts, RowTuple, diff_runs, diff_sorted
from assetd.fsutil import FileStat, IgnoreRules
from assetd.walk import DiskRow, ScandirFn, WalkProblem, list_files_recursively
from walk_tree import make_odd_tree, walk_odd_tree


def _walk(
    top: Path, follow: bool, scandir: ScandirFn = os.scandir
) -> tuple[list[FileStat], list[WalkProblem]]:
    return walk_odd_tree(top, follow, scandir=scandir)


def test_the_walk_read_ahead_equals_the_walk_read_in_place(tmp_path: Path) -> None:
    make_odd_tree(tmp_path)
    for follow in (False, True):
        ahead = _walk(tmp_path, follow)  # the default scandir: threads, by fd
        in_place = _walk(tmp_path, follow, lambda p: os.scandir(p))  # a seam: by path
        assert ahead == in_place
        paths = [f.path for f in ahead[0]]
        assert paths == sorted(paths)
        assert f"{tmp_path}/many/d11/f2" in paths and f"{tmp_path}/c/junk.tmp" not in paths
        assert (f"{tmp_path}/broken", "broken-symlink") in [(p.path, p.kind) for p in ahead[1]]


def test_runs_hold_the_files_of_the_walk(tmp_path: Path) -> None:
    make_odd_tree(tmp_path)
    runs = list(list_files_recursively(str(tmp_path), runs=True))
    files = list(list_files_recursively(str(tmp_path)))
    flat = [FileStat(r[0], r[1], r[2], r[4], r[5], r[6], r[7]) for run in runs for r in run]
    assert flat == files
    assert all(run for run in runs) and len(runs) < len(files)  # a directory's files together


def _walk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("assetd-walk")]


def test_an_abandoned_walk_leaves_no_thread(tmp_path: Path) -> None:
    make_odd_tree(tmp_path)
    it = list_files_recursively(str(tmp_path))
    assert isinstance(it, types.GeneratorType)
    assert next(it).path == f"{tmp_path}/a"
    assert _walk_threads() != []  # the next directories are being read ahead
    it.close()
    assert _walk_threads() == []


# --- the diff over runs and pages -----------------------------------------------------------------

_names = st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=10, unique=True)


@settings(max_examples=150, deadline=None)
@given(
    disk_names=_names,
    row_names=_names,
    data=st.data(),
)
def test_diff_runs_yields_what_diff_sorted_yields(
    disk_names: list[str], row_names: list[str], data: st.DataObject
) -> None:
    fig = st.tuples(st.integers(1, 2), st.integers(1, 2), st.sampled_from([1, 2, None]))
    disk: list[DiskRow] = []
    for name in sorted(disk_names):
        size, mtime, inode = data.draw(fig)
        disk.append((f"/r/{name}", size, mtime, False, 1, inode or 1, None, False))
    rows: list[RowTuple] = []
    for name in sorted(row_names):
        size, mtime, inode = data.draw(fig)
        missing = data.draw(st.booleans())
        rows.append((f"/r/{name}", size, mtime, missing, 1, inode, None, False))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(disk) - 1)))))
    runs = [disk[i:j] for i, j in zip([0, *cuts], [*cuts, len(disk)], strict=True) if disk[i:j]]
    page = data.draw(st.integers(1, 4))
    pages = [rows[i : i + page] for i in range(0, len(rows), page)]

    want_counts, got_counts = DiffCounts(), DiffCounts()
    files = [FileStat(d[0], d[1], d[2], d[4], d[5], d[6], d[7]) for d in disk]
    cat = [CatalogRow(0, r[0], r[1], r[2], r[3], r[6], r[4], r[5]) for r in rows]
    want = list(diff_sorted(files, cat, want_counts))
    got = list(diff_runs(iter(runs), iter(pages), got_counts))
    assert got == want
    assert (got_counts.unchanged, got_counts.already_missing) == (
        want_counts.unchanged,
        want_counts.already_missing,
    )


# --- the ignore rules, a listing at a time ------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(st.text("ab.*x-", min_size=1, max_size=5), max_size=12, unique=True),
    patterns=st.lists(
        st.sampled_from(["*.x", "a*", "ab", "*-", "?b", "a[b.]*", "x", ".*", "*"]), max_size=4
    ),
)
def test_ignored_among_is_name_ignored_for_each(names: list[str], patterns: list[str]) -> None:
    rules = IgnoreRules(patterns)
    assert rules.ignored_among(names) == {n for n in names if rules.name_ignored(n)}
