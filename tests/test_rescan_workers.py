"""A re-scan whose walk workers compare with the catalog themselves (issue 15, the rescan goal):
a stretch of a directory equal to the catalog's rows comes as one ``Same`` and its rows are never
read by the walk's thread. What it writes, counts and reports equals a re-scan merged in place,
on a tree of odd entries with every kind of change; and the merge of ``Same`` stretches with
the catalog's pages, as a pure function."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import assetd.reconcile as reconcile_mod
import assetd.walk as walk_mod
from assetd.catalog.engine import make_engine, session_factory
from assetd.diff import Action, DiffCounts, RowTuple, diff_runs
from assetd.reconcile import ReconcileResult
from assetd.walk import Run, Same
from catalog_world import World, make_world
from walk_tree import make_odd_tree


class _Seen:
    """Counts the ``Same`` stretches and the runs reconcile's diff receives."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.same = self.runs = 0
        real = diff_runs

        def spy(runs: Iterable[Run], pages: Any, counts: DiffCounts) -> Iterator[Any]:
            def tee() -> Iterator[Run]:
                for run in runs:
                    if isinstance(run, Same):
                        self.same += 1
                    else:
                        self.runs += 1
                    yield run

            return real(tee(), pages, counts)

        monkeypatch.setattr(reconcile_mod, "diff_runs", spy)


def _rows(url: str) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as con:
            return list(
                con.execute(
                    text(
                        "SELECT file_path, file_path_raw, is_missing, size_bytes, mtime_ns, "
                        "needs_verify, state_reason, is_symlink FROM asset_cache_states "
                        "ORDER BY file_path"
                    )
                ).all()
            )
    finally:
        engine.dispose()


def _summary(result: ReconcileResult) -> dict[str, object]:
    out = result.as_dict()
    del out["duration_s"]
    return {**out, "problems": sorted((p.path, p.kind) for p in result.problems)}


def _scan(url: str, lib: Path, root_id: int, world: World) -> ReconcileResult:
    engine = make_engine(url)
    try:
        twin = World(session_factory(engine), world.root, lib)
        assert twin.root.id == root_id
        return twin.scan()
    finally:
        engine.dispose()


def test_a_rescan_compared_by_the_workers_equals_one_merged_in_place(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    make_odd_tree(lib, per_dir=30, fifo=True)
    for i in range(3):  # files before, between and after subdirectories, deeper down
        for name in ("0-first", "m-middle", "z-last"):
            (lib / f"nest{i}/{name}").parent.mkdir(parents=True, exist_ok=True)
            (lib / f"nest{i}/{name}").write_bytes(name.encode())
        for j in range(20):
            (lib / f"nest{i}/k/f{j}").parent.mkdir(parents=True, exist_ok=True)
            (lib / f"nest{i}/k/f{j}").write_bytes(b"k" * j)
            (lib / f"nest{i}/s/f{j}").parent.mkdir(parents=True, exist_ok=True)
            (lib / f"nest{i}/s/f{j}").write_bytes(b"s" * j)
    engine = make_engine(sqlite_url)
    world = make_world(session_factory(engine), lib)
    assert world.scan().new > 400
    engine.dispose()
    seen = _Seen(monkeypatch)
    monkeypatch.setattr(reconcile_mod, "PAGE", 16)  # pages of 16 rows: many gaps to read
    monkeypatch.setattr(walk_mod, "idle_cores", lambda: 1)  # whatever else runs now
    monkeypatch.setattr(walk_mod, "PROCESSES_AFTER", 300)  # "a large re-scan": 300 rows

    changes: list[Callable[[], object]] = [
        lambda: (lib / "many/d03/f4").write_bytes(b"longer than it was"),  # changed
        lambda: os.unlink(lib / "many/d05/f7"),  # gone
        lambda: (lib / "many/d07/new").write_bytes(b"new"),  # new
        lambda: shutil.rmtree(lib / "nest1/k"),  # a directory gone: its rows in a stretch
        lambda: (lib / "many/d05/f7").write_bytes(b"many/d05/f7"),  # back (another mtime)
        lambda: None,  # nothing: the rows marked missing before are already missing
    ]
    by_workers = Path(sqlite_url.removeprefix("sqlite:///"))
    in_place = tmp_path / "in-place.db"
    shutil.copyfile(by_workers, in_place)
    for change in changes:
        change()
        results = []
        for url, compare in ((sqlite_url, True), (f"sqlite:///{in_place}", False)):
            monkeypatch.setattr(reconcile_mod, "_COMPARE_IN_WORKERS", compare)
            before = seen.same
            results.append(_summary(_scan(url, lib, world.root.id, world)))
            assert (seen.same > before) == compare  # the workers did compare, or not
        assert results[0] == results[1]
        assert _rows(sqlite_url) == _rows(f"sqlite:///{in_place}")
    assert results[0]["unchanged"] and results[0]["skipped"]  # the FIFO, the broken link...


def test_a_small_rescan_reads_in_place(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    make_odd_tree(lib, per_dir=30)
    engine = make_engine(sqlite_url)
    world = make_world(session_factory(engine), lib)
    world.scan()
    seen = _Seen(monkeypatch)
    monkeypatch.setattr(walk_mod, "idle_cores", lambda: 1)
    monkeypatch.setattr(walk_mod, "PROCESSES_AFTER", 1000)  # more rows than the catalog has
    result = world.scan()
    engine.dispose()
    assert result.unchanged > 300 and not (result.new or result.missing or result.changed)
    assert seen.same == 0 and seen.runs > 0


def _page(*paths: str, missing: tuple[str, ...] = ()) -> list[RowTuple]:
    return [(p, 1, 1, p in missing, 1, 1, None, False) for p in paths]


class _Pages:
    """Catalog pages that record where they were told to seek."""

    def __init__(self, pages: list[list[RowTuple]]) -> None:
        self.pages = pages
        self.sought: list[str] = []
        self.read = 0
        self.bound: str | None = None

    def __iter__(self) -> Iterator[list[RowTuple]]:
        return self

    def __next__(self) -> list[RowTuple]:
        if not self.pages:
            raise StopIteration
        self.read += 1
        if self.bound is None:
            return self.pages.pop(0)
        page = [r for r in self.pages[0] if r[0] < self.bound]
        self.pages[0] = self.pages[0][len(page) :]
        if not page:
            raise StopIteration
        return page

    def until(self, key: str | None) -> None:
        self.bound = key

    def seek(self, key: str) -> None:
        self.sought.append(key)
        while self.pages and self.pages[0] and self.pages[0][-1][0] < key:
            self.pages.pop(0)  # as the catalog would: no row before key is read
        if self.pages:
            self.pages[0] = [r for r in self.pages[0] if r[0] >= key]


def test_diff_runs_passes_same_stretches_without_merging_their_rows() -> None:
    pages = _Pages(
        [
            _page("/r/a", "/r/d/1", "/r/d/2"),  # /r/a: gone from the disk
            _page("/r/d/3", "/r/e", "/r/g/x", missing=("/r/g/x",)),
            _page("/r/h", "/r/i"),
        ]
    )
    runs: list[Run] = [
        Same("/r/d/", "/r/d0", 3),  # /r/a before it is missing; d's rows are not merged
        [("/r/e", 1, 1, False, 1, 1, None, False)],
        Same("/r/h", "/r/h0", 1),  # /r/g/x between: already missing
        [("/r/i", 2, 1, False, 1, 1, None, False)],  # changed
    ]
    counts = DiffCounts()
    steps = [(a, (d or r).path) for a, d, r in diff_runs(runs, pages, counts)]  # type: ignore[union-attr]
    assert steps == [(Action.MISSING, "/r/a"), (Action.CHANGED, "/r/i")]
    assert (counts.unchanged, counts.already_missing) == (5, 1)
    assert pages.sought == ["/r/d0"]  # the buffer ran out inside d's stretch only


def test_contiguous_same_stretches_read_no_page() -> None:
    pages = _Pages([_page("/r/a/1"), _page("/r/b/1"), _page("/r/c/1")])
    runs: list[Run] = [Same("/r/a/", "/r/a0", 1), Same("/r/a0", "/r/b/", 0)]
    runs += [Same("/r/b/", "/r/b0", 1), Same("/r/b0", "/r/c/", 0), Same("/r/c/", "/r/c0", 1)]
    counts = DiffCounts()
    assert list(diff_runs(runs, pages, counts)) == []
    assert counts.unchanged == 3
    assert pages.read == 1  # the first page, to find what lies before the first stretch


def test_rows_between_same_stretches_are_read_up_to_the_next_one_only() -> None:
    pages = _Pages([_page("/r/a/1", "/r/b/1", "/r/b/2", "/r/c/1", "/r/d/1")])
    pages.pages = [pages.pages[0][:1], pages.pages[0][1:]]  # the buffer ends inside a's
    runs: list[Run] = [Same("/r/a/", "/r/a0", 1), Same("/r/c/", "/r/c0", 1)]
    counts = DiffCounts()
    steps = [(a, (d or r).path) for a, d, r in diff_runs(runs, pages, counts)]  # type: ignore[union-attr]
    assert steps == [
        (Action.MISSING, "/r/b/1"),
        (Action.MISSING, "/r/b/2"),
        (Action.MISSING, "/r/d/1"),
    ]
    assert counts.unchanged == 2
    assert pages.bound is None  # the bound is lifted after the gap
