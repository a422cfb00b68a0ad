"""Coalescing: literal changes in, literal Batch out; and a model-based property (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import itertools
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from assetd.live.changes import Batch, Change, Kind, _Folder, coalesce
from assetd.paths import is_under, rebase


def c(path: str, *, d: bool = False) -> Change:
    return Change(Kind.CREATED, path, is_dir=d)


def m(path: str, *, d: bool = False) -> Change:
    return Change(Kind.MODIFIED, path, is_dir=d)


def rm(path: str, *, d: bool = False) -> Change:
    return Change(Kind.DELETED, path, is_dir=d)


def mv(src: str, dest: str, *, d: bool = False) -> Change:
    return Change(Kind.MOVED, src, is_dir=d, dest=dest)


def out(
    moves: Sequence[Change] = (),
    gone: Iterable[str] = (),
    touched: Iterable[str] = (),
    rescan: Iterable[str] = (),
) -> Batch:
    """An expected Batch (size is compared separately)."""
    return Batch(tuple(moves), frozenset(gone), frozenset(touched), frozenset(rescan))


def run(changes: Sequence[Change], **kwargs: object) -> Batch:
    batch = coalesce(changes, **kwargs)  # type: ignore[arg-type]
    assert batch.size == len(changes)
    return dataclasses.replace(batch, size=0)


# --- last state wins, cancel, noise ----------------------------------------------------------

LAST_STATE = [
    ([c("/r/a")], out(touched={"/r/a"})),
    ([m("/r/a")], out(touched={"/r/a"})),
    ([rm("/r/a")], out(gone={"/r/a"})),
    ([c("/r/a"), m("/r/a")], out(touched={"/r/a"})),
    # created then deleted reaches the worker: a listing may have catalogued it already
    ([c("/r/a"), rm("/r/a")], out(gone={"/r/a"})),
    ([c("/r/a"), m("/r/a"), rm("/r/a")], out(gone={"/r/a"})),
    ([rm("/r/a"), c("/r/a")], out(touched={"/r/a"})),
    ([m("/r/a"), rm("/r/a")], out(gone={"/r/a"})),
    # existed before the batch: a delete after a re-create is not cancelled
    ([rm("/r/a"), c("/r/a"), rm("/r/a")], out(gone={"/r/a"})),
    ([c("/r/a"), rm("/r/a"), c("/r/a")], out(touched={"/r/a"})),
    ([m("/r/a"), m("/r/a"), m("/r/b")], out(touched={"/r/a", "/r/b"})),
    # directory MODIFIED events carry nothing
    ([m("/r", d=True)], out()),
    ([c("/r/a"), m("/r", d=True), m("/r/a"), m("/r", d=True)], out(touched={"/r/a"})),
]


@pytest.mark.parametrize(("changes", "expected"), LAST_STATE)
def test_last_state_wins(changes: list[Change], expected: Batch) -> None:
    assert run(changes) == expected


# --- moves -----------------------------------------------------------------------------------

MOVES = [
    pytest.param([mv("/r/a", "/r/b")], out([mv("/r/a", "/r/b")]), id="kept"),
    pytest.param(
        [mv("/r/a", "/r/b"), m("/r/b")],
        out([mv("/r/a", "/r/b")], touched={"/r/b"}),
        id="dest-modified-after",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), rm("/r/b")],
        out([mv("/r/a", "/r/b")], gone={"/r/b"}),
        id="dest-deleted-after-keeps-move",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), c("/r/a")],
        out([mv("/r/a", "/r/b")], touched={"/r/a"}),
        id="source-recreated",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), c("/r/a"), rm("/r/a")],
        out([mv("/r/a", "/r/b")], gone={"/r/a"}),
        id="source-recreated-and-deleted",
    ),
    pytest.param(
        [c("/r/a"), m("/r/a"), mv("/r/a", "/r/b")],
        out([mv("/r/a", "/r/b")], touched={"/r/b"}),
        id="created-then-moved",
    ),
    pytest.param(
        [c("/r/a"), mv("/r/a", "/r/b"), rm("/r/b")],
        out([mv("/r/a", "/r/b")], gone={"/r/b"}),
        id="created-moved-deleted",
    ),
    pytest.param(
        [m("/r/a"), mv("/r/a", "/r/b")],
        out([mv("/r/a", "/r/b")], touched={"/r/b"}),
        id="modified-then-moved",
    ),
    pytest.param(
        [rm("/r/b"), mv("/r/a", "/r/b")],
        out([mv("/r/a", "/r/b")]),
        id="move-supersedes-dest-deleted",
    ),
    pytest.param(
        [m("/r/b"), mv("/r/a", "/r/b")],
        out([mv("/r/a", "/r/b")]),
        id="move-supersedes-dest-modified",
    ),
    pytest.param(
        # an editor's atomic save: the move stays (the worker keeps b's row, see module doc)
        [c("/r/.b.swp"), m("/r/.b.swp"), mv("/r/.b.swp", "/r/b"), m("/r", d=True)],
        out([mv("/r/.b.swp", "/r/b")], touched={"/r/b"}),
        id="atomic-save",
    ),
    pytest.param([mv("/r/a", "/r/a")], out(), id="onto-itself"),
]


@pytest.mark.parametrize(("changes", "expected"), MOVES)
def test_moves(changes: list[Change], expected: Batch) -> None:
    assert run(changes) == expected


CHAINS = [
    pytest.param(
        # not folded into a -> c: mv a b is an edit of b (rule 7), whose row the second hop takes
        [mv("/r/a", "/r/b"), mv("/r/b", "/r/c")],
        out([mv("/r/a", "/r/b"), mv("/r/b", "/r/c")]),
        id="a-b-c",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), mv("/r/b", "/r/c"), mv("/r/c", "/r/d")],
        out([mv("/r/a", "/r/b"), mv("/r/b", "/r/c"), mv("/r/c", "/r/d")]),
        id="a-b-c-d",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), mv("/r/b", "/r/a")],
        out([mv("/r/a", "/r/b"), mv("/r/b", "/r/a")]),
        id="a-b-a-kept",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), m("/r/b"), mv("/r/b", "/r/c")],
        out([mv("/r/a", "/r/b"), mv("/r/b", "/r/c")], touched={"/r/c"}),
        id="modified-between-hops",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), mv("/r/x", "/r/y"), mv("/r/b", "/r/c")],
        out([mv("/r/a", "/r/b"), mv("/r/x", "/r/y"), mv("/r/b", "/r/c")]),
        id="unrelated-move-between",
    ),
    pytest.param(
        # y lands on c before the second hop overwrites it: folding would move a onto c too early
        [mv("/r/a", "/r/b"), mv("/r/y", "/r/c"), mv("/r/b", "/r/c")],
        out([mv("/r/a", "/r/b"), mv("/r/y", "/r/c"), mv("/r/b", "/r/c")]),
        id="blocked-by-move-onto-dest",
    ),
    pytest.param(
        [mv("/r/a", "/r/t"), mv("/r/b", "/r/a"), mv("/r/t", "/r/b")],
        out([mv("/r/a", "/r/t"), mv("/r/b", "/r/a"), mv("/r/t", "/r/b")]),
        id="swap-keeps-all-three",
    ),
    pytest.param(
        # a later move of b's directory would carry what the fold leaves at b
        [mv("/r/a", "/r/d/b"), mv("/r/d/b", "/r/c"), mv("/r/d", "/r/e", d=True)],
        out([mv("/r/a", "/r/d/b"), mv("/r/d/b", "/r/c"), mv("/r/d", "/r/e", d=True)]),
        id="blocked-by-later-move-of-intermediate-dir",
    ),
    pytest.param(
        [mv("/r/a", "/r/b"), mv("/r/b", "/r/c"), c("/r/b"), mv("/r/b", "/r/z")],
        out([mv("/r/a", "/r/b"), mv("/r/b", "/r/c"), mv("/r/b", "/r/z")], touched={"/r/z"}),
        id="blocked-by-later-move-from-intermediate",
    ),
    pytest.param(
        # stale rows under e (if any) ride along with the second hop: directory chains stay
        [mv("/r/d", "/r/e", d=True), mv("/r/e", "/r/f", d=True)],
        out([mv("/r/d", "/r/e", d=True), mv("/r/e", "/r/f", d=True)]),
        id="directory-chain-kept",
    ),
    pytest.param(
        [mv("/r/d", "/r/e", d=True), mv("/r/e", "/r/d", d=True)],
        out([mv("/r/d", "/r/e", d=True), mv("/r/e", "/r/d", d=True)]),
        id="directory-there-and-back-kept",
    ),
    pytest.param(
        [mv("/r/a", "/r/d/a"), mv("/r/d", "/r/e", d=True), mv("/r/e/a", "/r/f")],
        out([mv("/r/a", "/r/d/a"), mv("/r/d", "/r/e", d=True), mv("/r/e/a", "/r/f")]),
        id="file-into-moved-directory",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), CHAINS)
def test_move_chains(changes: list[Change], expected: Batch) -> None:
    assert run(changes) == expected


# --- directories -----------------------------------------------------------------------------

DIRECTORIES = [
    pytest.param(
        [mv("/r/d", "/r/e", d=True)], out([mv("/r/d", "/r/e", d=True)]), id="dir-move-kept"
    ),
    pytest.param(
        [c("/r/d/x"), m("/r/d/y"), rm("/r/d/z"), m("/r/q"), mv("/r/d", "/r/e", d=True)],
        out([mv("/r/d", "/r/e", d=True)], gone={"/r/e/z"}, touched={"/r/e/x", "/r/e/y", "/r/q"}),
        id="earlier-children-rebased",
    ),
    pytest.param(
        [mv("/r/d", "/r/e", d=True), m("/r/e/x"), c("/r/d", d=True)],
        out([mv("/r/d", "/r/e", d=True)], touched={"/r/e/x", "/r/d"}),
        id="later-changes-name-new-paths",
    ),
    pytest.param(
        [
            mv("/r/d", "/r/e", d=True),
            m("/r", d=True),
            mv("/r/d/x", "/r/e/x"),
            mv("/r/d/s", "/r/e/s", d=True),
            mv("/r/d/s/y", "/r/e/s/y"),
        ],
        out([mv("/r/d", "/r/e", d=True)]),
        id="watchdog-synthetic-sub-moves-dropped",
    ),
    pytest.param(
        [mv("/r/d", "/r/e", d=True), c("/r/d", d=True), c("/r/d/x"), mv("/r/d/x", "/r/e/x")],
        out([mv("/r/d", "/r/e", d=True), mv("/r/d/x", "/r/e/x")], touched={"/r/d", "/r/e/x"}),
        id="real-move-after-recreation-kept",
    ),
    pytest.param(
        [rm("/r/d/x"), rm("/r/d/s/y"), rm("/r/d/s", d=True), rm("/r/d", d=True)],
        out(gone={"/r/d"}),
        id="deleted-dir-covers-children",
    ),
    pytest.param(
        [rm("/r/d", d=True), rm("/r/d/x")],
        out(gone={"/r/d"}),
        id="deleted-dir-covers-children-in-any-order",
    ),
    pytest.param(
        [rm("/r/d/x"), rm("/r/d", d=True), c("/r/d", d=True)],
        out(gone={"/r/d/x"}, touched={"/r/d"}),
        id="deleted-then-recreated-dir-keeps-children",
    ),
    pytest.param(
        [rm("/r/d/x"), rm("/r/d", d=True), mv("/r/e", "/r/d", d=True)],
        out([mv("/r/e", "/r/d", d=True)], gone={"/r/d/x"}),
        id="deleted-dir-moved-onto-keeps-children",
    ),
    pytest.param(
        # e/s lands on the deleted d/s: the rows under the old d/s need their own stat
        [rm("/r/d/s/a"), rm("/r/d/s", d=True), rm("/r/d", d=True), mv("/r/e", "/r/d", d=True)],
        out([mv("/r/e", "/r/d", d=True)], gone={"/r/d/s", "/r/d/s/a"}),
        id="deleted-dir-brought-back-by-ancestor-move",
    ),
    pytest.param(
        [c("/r/d", d=True), c("/r/d/x"), m("/r/d", d=True)],
        out(touched={"/r/d", "/r/d/x"}),
        id="created-dir-touched",
    ),
    pytest.param(
        [c("/r/d", d=True), c("/r/d/x"), rm("/r/d/x"), rm("/r/d", d=True)],
        out(gone={"/r/d"}),
        id="created-dir-removed-is-gone",
    ),
    pytest.param(
        [c("/r/d", d=True), mv("/r/y", "/r/d/y"), rm("/r/d/y"), rm("/r/d", d=True)],
        out([mv("/r/y", "/r/d/y")], gone={"/r/d"}),
        id="moved-into-created-dir-then-removed",
    ),
    pytest.param(
        [mv("/r/a", "/r/d/a"), rm("/r/d/a"), rm("/r/d", d=True)],
        out([mv("/r/a", "/r/d/a")], gone={"/r/d"}),
        id="moved-into-dir-then-dir-removed",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), DIRECTORIES)
def test_directories(changes: list[Change], expected: Batch) -> None:
    assert run(changes) == expected


# --- collapse into rescan --------------------------------------------------------------------

COLLAPSE = [
    pytest.param(
        [c("/r/d/1"), c("/r/d/2"), m("/r/x")],
        {"dir_threshold": 2},
        out(touched={"/r/d/1", "/r/d/2", "/r/x"}),
        id="at-dir-threshold-kept",
    ),
    pytest.param(
        [c("/r/d/1"), c("/r/d/2"), rm("/r/d/3"), m("/r/x"), c("/r/d/s/1")],
        {"dir_threshold": 2},
        out(touched={"/r/x"}, rescan={"/r/d"}),
        id="over-dir-threshold",
    ),
    pytest.param(
        [rm("/r/d/1"), rm("/r/d/2"), rm("/r/d", d=True), c("/r/e")],
        {"dir_threshold": 1},
        out(rescan={"/r"}),
        id="deleted-dir-counts-once",
    ),
    pytest.param(
        [rm("/r/d/1"), rm("/r/d/2"), rm("/r/d", d=True)],
        {"dir_threshold": 1},
        out(gone={"/r/d"}),
        id="covered-children-not-counted",
    ),
    pytest.param(
        [c("/r/d/1"), c("/r/d/2"), c("/r/3"), c("/r/4")],
        {"dir_threshold": 1},
        out(rescan={"/r"}),
        id="nested-rescans-merge",
    ),
    pytest.param(
        [c("/r/a/1"), c("/r/b/2"), c("/r/c/3"), c("/r/4"), c("/s/x"), c("/t/y")],
        {"root_threshold": 3, "roots": ["/r", "/s/"]},
        out(touched={"/s/x", "/t/y"}, rescan={"/r"}),
        id="over-root-threshold",
    ),
    pytest.param(
        [c("/r/a/1"), c("/r/b/2"), c("/r/c/3")],
        {"root_threshold": 3, "roots": ["/r"]},
        out(touched={"/r/a/1", "/r/b/2", "/r/c/3"}),
        id="at-root-threshold-kept",
    ),
    pytest.param(
        [rm("/r/in"), c("/r/in/a"), c("/r/in/b"), c("/r/x"), c("/r/y")],
        {"root_threshold": 2, "roots": ["/r", "/r/in"]},
        out(touched={"/r/x", "/r/y"}, rescan={"/r/in"}),
        id="nested-root-counts-its-own-path",
    ),
    pytest.param(
        [c("/r/in/a"), c("/r/in/b"), c("/r/in/c"), c("/r/x"), c("/r/y")],
        {"root_threshold": 2, "roots": ["/r", "/r/in"]},
        out(touched={"/r/x", "/r/y"}, rescan={"/r/in"}),
        id="nested-root-paths-not-counted-in-the-outer-one",
    ),
    pytest.param(
        [c("/r/a/1"), c("/r/b/2"), c("/r/c/3")],
        {"root_threshold": 0},
        out(touched={"/r/a/1", "/r/b/2", "/r/c/3"}),
        id="no-roots-no-root-collapse",
    ),
    pytest.param(
        [mv("/r/d/a", "/r/d/b"), mv("/r/d/c", "/r/e/c"), c("/r/d/x")],
        {"dir_threshold": 0, "root_threshold": 0, "roots": ["/r"]},
        out([mv("/r/d/a", "/r/d/b"), mv("/r/d/c", "/r/e/c")], rescan={"/r"}),
        id="moves-never-collapse",
    ),
]


@pytest.mark.parametrize(("changes", "kwargs", "expected"), COLLAPSE)
def test_collapse(changes: list[Change], kwargs: dict[str, object], expected: Batch) -> None:
    assert run(changes, **kwargs) == expected


# --- values and helpers ----------------------------------------------------------------------


def test_paths_pass_through_verbatim() -> None:
    odd = "/r/caf\udce9 \\x.bin"  # a surrogate-escaped byte, as os.fsdecode gives it
    assert run([c(odd), mv(odd, "/r/ok")]) == out([mv(odd, "/r/ok")], touched={"/r/ok"})


def test_size_counts_every_raw_change() -> None:
    batch = coalesce([m("/r", d=True), c("/r/a"), m("/r", d=True)])
    assert batch.size == 3
    assert coalesce([m("/r", d=True), m("/r", d=True)]).empty
    assert not coalesce([c("/r/a")]).empty
    assert coalesce([]) == Batch()


def test_change_is_a_frozen_hashable_value() -> None:
    assert c("/r/a") == Change(Kind.CREATED, "/r/a")
    assert c("/r/a", d=True) != c("/r/a")
    assert len({c("/r/a"), c("/r/a"), m("/r/a")}) == 2
    assert Change(Kind.DELETED, "/r/a", seen=1.0) == Change(Kind.DELETED, "/r/a", seen=2.0)
    assert Kind.MOVED.value == "moved"
    if TYPE_CHECKING:  # frozen for mypy (Final; strict mode flags an ignore that is not needed)
        c("/r/a").path = "/r/b"  # type: ignore[misc]
    with pytest.raises(ValueError, match="dest"):
        Change(Kind.MOVED, "/r/a")
    with pytest.raises(ValueError, match="dest"):
        Change(Kind.CREATED, "/r/a", dest="/r/b")


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/r/a", "/r/a", True),
        ("/r/a/b", "/r/a", True),
        ("/r/ab", "/r/a", False),
        ("/r", "/r/a", False),
        ("/r/a", "/", True),
        ("/", "/", True),
    ],
)
def test_is_under(path: str, prefix: str, expected: bool) -> None:
    assert is_under(path, prefix) is expected


@pytest.mark.parametrize(
    ("path", "src", "dst", "expected"),
    [
        ("/r/a", "/r/a", "/r/b", "/r/b"),
        ("/r/a/x/y", "/r/a", "/s/b", "/s/b/x/y"),
        ("/x", "/", "/r", "/r/x"),
        ("/r/x", "/r", "/", "/x"),
    ],
)
def test_rebase(path: str, src: str, dst: str, expected: str) -> None:
    assert rebase(path, src, dst) == expected


def test_rebase_refuses_a_path_outside() -> None:
    with pytest.raises(ValueError, match="not under"):
        rebase("/r/ab", "/r/a", "/r/b")


# --- property: one batch does what the raw changes do one by one -----------------------------
#
# The model: a disk (directories, and files with a content version) and a catalog (path -> row
# with an identity, a present flag and the version it recorded). The reference applies each raw
# change as soon as it happens, like a worker given one-change batches. The batch side applies
# coalesce(all changes) once, on the final disk, the way the module docstring says the worker
# does; a move whose source has no row does nothing there, so the batch must say what to stat.
# Then: the catalog is true to the disk; every live row of the reference is live at the same path
# on the batch side; every missing row of the reference still exists there (a folded directory
# chain leaves stale rows where they were instead of carrying them through); and a row live on the
# batch side but not in the reference stands only where the reference made a new row (the batch
# may keep metadata the reference replaced, e.g. a file moved over it and then moved on).

ROOT = "/r"
DIRS = ("/r/d", "/r/e", "/r/f", "/r/d/s", "/r/e/s")  # directory names operations may create
NAMES = ("a", "b")  # file names in each directory
NEW = "new"  # identity of a row created during the run (the name of its metadata does not matter)


@dataclass
class Row:
    ident: str
    present: bool
    version: int


@dataclass
class Disk:
    dirs: set[str]
    files: dict[str, int]
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def under(self, path: str) -> list[str]:
        return sorted(f for f in self.files if is_under(f, path))

    def dirs_under(self, path: str) -> list[str]:
        return sorted(d for d in self.dirs if is_under(d, path) and d != path)

    def file_slots(self) -> list[str]:
        return [f"{d}/{n}" for d in sorted(self.dirs) for n in NAMES if f"{d}/{n}" not in self.dirs]


Catalog = dict[str, Row]


def upsert(cat: Catalog, disk: Disk, path: str) -> None:
    if path in disk.files:
        row = cat.get(path)
        if row is None:
            cat[path] = Row(NEW, True, disk.files[path])
        else:
            row.present, row.version = True, disk.files[path]
    else:
        mark_missing(cat, path)


def mark_missing(cat: Catalog, path: str) -> None:
    for p, row in cat.items():
        if is_under(p, path):
            row.present = False


def move_rows(cat: Catalog, src: str, dest: str, *, is_dir: bool) -> None:
    """A file move rewrites the row at src; a directory move every row under src."""
    moved = {p: cat.pop(p) for p in [p for p in cat if p == src or (is_dir and is_under(p, src))]}
    for p, row in moved.items():
        cat[rebase(p, src, dest)] = row  # a row standing there is replaced


def stat(cat: Catalog, disk: Disk, path: str) -> None:
    if path in disk.dirs:
        for f in disk.under(path):
            upsert(cat, disk, f)
    else:
        upsert(cat, disk, path)


def apply_one(cat: Catalog, disk: Disk, change: Change) -> None:
    """The reference: one raw change, applied right after it happened."""
    if change.kind is Kind.MOVED:
        assert change.dest is not None
        if change.is_dir or change.path in cat:
            move_rows(cat, change.path, change.dest, is_dir=change.is_dir)
        else:  # nothing known at the source (e.g. watchdog's synthetic sub-moves): a create
            stat(cat, disk, change.dest)
    elif change.kind is Kind.DELETED:
        mark_missing(cat, change.path)
    elif not (change.kind is Kind.MODIFIED and change.is_dir):
        stat(cat, disk, change.path)


def apply_batch(cat: Catalog, disk: Disk, batch: Batch) -> None:
    """The worker as the module docstring describes it, on the disk as it is at flush time."""
    for move in batch.moves:
        assert move.dest is not None
        move_rows(cat, move.path, move.dest, is_dir=move.is_dir)
    for path in sorted(batch.touched | batch.gone):
        stat(cat, disk, path)
    for top in batch.rescan:
        for p in [p for p in cat if is_under(p, top)]:
            upsert(cat, disk, p)
        for f in disk.under(top):
            upsert(cat, disk, f)


# moves weigh double: they are what coalescing has to get right
OPS = ("create", "modify", "delete", "move", "move", "mkdir", "rmtree", "mvdir", "mvdir", "noise")


def pick(items: Iterable[str], i: int) -> str | None:
    seq = list(items)
    return seq[i % len(seq)] if seq else None


def play(disk: Disk, cat: Catalog, op: str, i: int, j: int, synthetic: bool) -> list[Change]:
    """Do one operation on the model disk; return the changes watchdog would report for it."""
    dirs, files = disk.dirs, disk.files
    present = sorted(files)
    subdirs = sorted(dirs - {ROOT})
    out: list[Change] = []
    if op == "create" and (f := pick((s for s in disk.file_slots() if s not in files), i)):
        files[f] = next(disk.versions)
        out = [c(f), m(posixpath.dirname(f), d=True)]
    elif op == "modify" and (f := pick(present, i)):
        files[f] = next(disk.versions)
        out = [m(f)]
    elif op == "delete" and (f := pick(present, i)):
        del files[f]
        out = [rm(f), m(posixpath.dirname(f), d=True)]
    elif op == "move" and (f := pick(present, i)) and (g := pick(disk.file_slots(), j)) != f:
        assert g is not None
        files[g] = files.pop(f)
        out = [mv(f, g), m(posixpath.dirname(f), d=True), m(posixpath.dirname(g), d=True)]
    elif op == "mkdir" and (
        d := pick((d for d in DIRS if d not in dirs and posixpath.dirname(d) in dirs), i)
    ):
        dirs.add(d)
        out = [c(d, d=True), m(posixpath.dirname(d), d=True)]
    elif op == "rmtree" and (d := pick(subdirs, i)):
        out = [rm(p) for p in disk.under(d)]  # rm -rf: children first, deepest directory first
        out += [rm(s, d=True) for s in sorted(disk.dirs_under(d), reverse=True)] + [rm(d, d=True)]
        for p in disk.under(d):
            del files[p]
        dirs.difference_update([d, *disk.dirs_under(d)])
    elif op == "mvdir" and (d := pick(subdirs, i)):
        e = pick(
            (
                e
                for e in DIRS
                if posixpath.dirname(e) in dirs
                and not is_under(e, d)
                and not is_under(d, e)
                and not disk.under(e)
                and not disk.dirs_under(e)
            ),
            j,
        )
        if e is not None:
            inner_dirs = [rebase(s, d, e) for s in disk.dirs_under(d)]
            moved = {rebase(p, d, e): files.pop(p) for p in disk.under(d)}
            files.update(moved)
            dirs.difference_update([d, *disk.dirs_under(d)])
            dirs.update([e, *inner_dirs])
            out = [mv(d, e, d=True), m(posixpath.dirname(d), d=True), m(ROOT, d=True)]
            if synthetic:  # what watchdog's generate_sub_moved_events adds after a directory move
                out += [mv(rebase(s, e, d), s, d=True) for s in inner_dirs]
                out += [mv(rebase(p, e, d), p) for p in sorted(moved)]
    elif op == "noise":
        out = [m(ROOT, d=True)]
    for change in out:
        apply_one(cat, disk, change)
    return out


def is_true_to(cat: Catalog, disk: Disk) -> bool:
    present = {p: row.version for p, row in cat.items() if row.present}
    return present == disk.files


def where(cat: Catalog) -> dict[str, tuple[str, bool]]:
    return {row.ident: (p, row.present) for p, row in cat.items() if row.ident != NEW}


ALL_FILES = tuple(f"{d}/{n}" for d in (ROOT, *DIRS) for n in NAMES)


@settings(max_examples=200, deadline=None)
# a move carries 'born' off: create a, mv a b (b had a row), rm b must reach the worker
@example(
    dirs=set(),
    files={"/r/a"},
    stale=set(),
    ops=[("create", 0, 0, False), ("move", 1, 0, False), ("delete", 0, 0, False)],
    thresholds=(1000, 10000),
)
# a chain through a catalogued file (mv y x is an edit of x, then x moves on)
@example(
    dirs=set(),
    files={"/r/a", "/r/b"},
    stale=set(),
    ops=[("delete", 0, 0, False), ("move", 0, 0, False), ("move", 0, 1, False)],
    thresholds=(1000, 10000),
)
# no fold when a later move (of the directory) would carry what the fold leaves behind
@example(
    dirs=set(),
    files={"/r/a"},
    stale={"/r/a", "/r/b", "/r/d/a", "/r/d/b", "/r/e/a"},
    ops=[
        ("mkdir", 0, 0, False),
        ("move", 0, 2, False),
        ("move", 0, 0, False),
        ("mvdir", 0, 0, False),
    ],
    thresholds=(1000, 10000),
)
# no fold when something moves onto the end between the hops
@example(
    dirs={"/r/d"},
    files={"/r/a"},
    stale=set(),
    ops=[
        ("move", 0, 1, False),
        ("create", 0, 0, False),
        ("move", 0, 2, False),
        ("move", 0, 0, False),
    ],
    thresholds=(0, 0),
)
# directory chains are not folded
@example(
    dirs={"/r/d"},
    files={"/r/a"},
    stale=set(),
    ops=[("mvdir", 0, 0, False), ("move", 0, 2, False), ("mvdir", 0, 0, False)],
    thresholds=(0, 0),
)
# a deleted directory brought back by a move onto its parent does not cover its children
@example(
    dirs={"/r/d", "/r/d/s", "/r/e", "/r/e/s", "/r/f"},
    files={"/r/d/s/a"},
    stale=set(),
    ops=[("rmtree", 0, 0, False), ("mvdir", 0, 0, False)],
    thresholds=(1000, 10000),
)
# a move onto a deleted directory supersedes its gone record
@example(
    dirs={"/r/d", "/r/e"},
    files={"/r/a", "/r/d/a"},
    stale=set(),
    ops=[("rmtree", 0, 0, False), ("mvdir", 0, 0, False)],
    thresholds=(1000, 10000),
)
# a real move under a recreated directory is not taken for a synthetic sub-move
@example(
    dirs={"/r/e", "/r/f"},
    files={"/r/a", "/r/b", "/r/f/a"},
    stale=set(),
    ops=[
        ("mkdir", 1, 0, False),
        ("mvdir", 0, 0, False),
        ("mkdir", 0, 0, False),
        ("mvdir", 3, 2, False),
        ("mvdir", 3, 1, False),
    ],
    thresholds=(0, 0),
)
# watchdog's synthetic sub-moves after a directory move are dropped
@example(
    dirs={"/r/d"},
    files={"/r/d/a"},
    stale=set(),
    ops=[("mvdir", 0, 0, True), ("move", 0, 0, False)],
    thresholds=(0, 0),
)
# modified then deleted is gone, not cancelled
@example(
    dirs=set(),
    files={"/r/a"},
    stale=set(),
    ops=[("modify", 0, 0, False), ("delete", 0, 0, False)],
    thresholds=(1000, 10000),
)
# a directory move rebases the records under it
@example(
    dirs={"/r/d"},
    files=set(),
    stale=set(),
    ops=[
        ("create", 0, 0, False),
        ("create", 0, 0, False),
        ("create", 0, 0, False),
        ("mvdir", 0, 0, False),
    ],
    thresholds=(1000, 10000),
)
@given(
    dirs=st.sets(st.sampled_from(DIRS)),
    files=st.sets(st.sampled_from(ALL_FILES)),
    stale=st.sets(st.sampled_from(ALL_FILES)),
    ops=st.lists(
        # small indices: operations keep landing on the same few paths, which is where it matters
        st.tuples(st.sampled_from(OPS), st.integers(0, 3), st.integers(0, 3), st.booleans()),
        max_size=24,
    ),
    thresholds=st.sampled_from([(1000, 10000), (1, 10000), (2, 3), (0, 0)]),
)
def test_batch_matches_changes_one_by_one(
    dirs: set[str],
    files: set[str],
    stale: set[str],
    ops: list[tuple[str, int, int, bool]],
    thresholds: tuple[int, int],
) -> None:
    disk = Disk(dirs={ROOT}, files={})
    disk.dirs.update(d for d in sorted(dirs) if posixpath.dirname(d) in disk.dirs)
    for f in sorted(files):
        if posixpath.dirname(f) in disk.dirs:
            disk.files[f] = next(disk.versions)
    # rows known before the batch: every file on disk, plus missing rows at some absent paths
    initial: Catalog = {p: Row(f"old:{p}", True, v) for p, v in disk.files.items()}
    initial.update({p: Row(f"old:{p}", False, 0) for p in stale if p not in disk.files})

    reference = {p: dataclasses.replace(row) for p, row in initial.items()}
    changes: list[Change] = []
    for op, i, j, synthetic in ops:
        changes += play(disk, reference, op, i, j, synthetic)
        assert is_true_to(reference, disk), "the reference model itself is wrong"

    dir_threshold, root_threshold = thresholds
    batch = coalesce(
        changes, dir_threshold=dir_threshold, root_threshold=root_threshold, roots=[ROOT]
    )
    assert batch.size == len(changes)
    got = {p: dataclasses.replace(row) for p, row in initial.items()}
    apply_batch(got, disk, batch)

    assert is_true_to(got, disk)
    want_at, got_at = where(reference), where(got)
    for ident, (path, present) in want_at.items():
        if present:  # live metadata: at the same path
            assert got_at.get(ident) == (path, True), ident
        else:  # missing metadata: kept (a folded chain may leave it where it was)
            assert ident in got_at, ident
    for ident, (path, present) in got_at.items():
        if present and want_at.get(ident, (path, False))[1] is False:
            # the reference replaced or left behind this row; the batch may keep it live only
            # where the reference has a row created during the run, never someone else's row
            assert reference[path].ident == NEW, ident


_KINDS = [Kind.CREATED, Kind.DELETED, Kind.MODIFIED, Kind.MOVED]
_PATHS = ["/r/a", "/r/a/x", "/r/b", "/r/b/y", "/r/c"]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_KINDS),
            st.sampled_from(_PATHS),
            st.sampled_from(_PATHS),
            st.booleans(),
        ),
        max_size=12,
    )
)
def test_feeding_all_at_once_is_feeding_one_by_one(
    ops: list[tuple[Kind, str, str, bool]],
) -> None:
    """``_Folder.feed_all`` (inline until the first move) leaves the folder as ``feed``
    called for each change does: the same records, count and sequence."""
    changes = [Change(k, p, d, q if k is Kind.MOVED else None) for k, p, q, d in ops]
    at_once, one_by_one = _Folder(), _Folder()
    at_once.feed_all(changes)
    for change in changes:
        one_by_one.feed(change)
    assert (at_once.size, at_once.seq) == (one_by_one.size, one_by_one.seq)
    assert at_once.records.by_path == one_by_one.records.by_path
    assert at_once.moves == one_by_one.moves
    assert at_once.seen == one_by_one.seen
