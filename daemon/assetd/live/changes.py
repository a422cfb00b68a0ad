"""Change values and their pure coalescing into a Batch (DESIGN §2). No I/O, no threads.

The handler turns each watchdog event into a frozen :class:`Change`; the debouncer collects them;
:func:`coalesce` folds one flush of them into a :class:`Batch`, the work the worker does in one
transaction. The worker applies a batch in this order:

1. ``moves``, in order. A file move rewrites the row at ``path`` to ``dest`` (a row standing at
   ``dest`` is replaced); a directory move rewrites every row under ``path``. A move whose source
   has no row does nothing by itself: whenever that can happen here (the source was created in this
   batch) ``dest`` is also in ``touched``.
2. ``touched`` and ``gone``, in the namespace *after* the moves. Each path is stat'ed and the disk
   wins: a file present is upserted or restored; an absent path marks its row, and every row
   under it, missing; a directory present has its subtree reconciled (listing it would do for
   this batch, but a directory deleted here may be back by flush time with stale rows under it
   whose own records were dropped as covered). ``gone`` versus ``touched`` is the last event's
   view, a hint: a path in ``gone`` that is present again is treated as touched.
3. ``rescan``: each directory's subtree is reconciled against the disk (both directions).

Coalescing choices, one per rule (the tests in ``tests/test_changes.py`` show each):

- The last state of a path wins: created+modified -> touched; deleted+created -> touched;
  modified+deleted -> gone.
- Created then deleted is gone, not cancelled: the worker may have catalogued the path already
  (a subtree listed by an earlier batch sees files whose creation events arrive later), so the
  delete must reach it; for a path with no row it costs one indexed lookup.
- Directory MODIFIED events carry nothing (inotify reports one per child change): dropped.
- A move stays a move. A move supersedes what stood at ``dest`` (a pending record exactly at
  ``dest`` is dropped: the worker's move replaces that row); records under a moved directory's
  ``dest`` stay (stale rows there still need a stat).
- Records of paths under the source (the path itself for a file move) are rebased onto ``dest``,
  so created-then-moved ``a -> b`` gives the move and ``b`` in ``touched``; modified-then-moved
  gives ``b`` in ``touched``. Changes after the move name new paths already: ``b`` deleted keeps
  the move and puts ``b`` in ``gone``; ``a`` recreated puts ``a`` in ``touched``.
- Move chains are not folded: ``a -> b``, ``b -> c`` stays two moves, applied in order. A row
  that stood at ``b`` is not overwritten by the first hop: ``mv a b`` is an edit of ``b``
  (content-rules.md rule 7: ``b`` keeps its row and gains ``a``'s metadata), and the second hop
  takes that row to ``c``. Folding to ``a -> c`` left ``b``'s row and metadata behind, missing
  (found by the stateful test: ``mv y x; mv x z`` in one batch).
- watchdog follows every directory move with one synthetic move per entry under it
  (``generate_sub_moved_events``). Such a move, ``s -> rebase(s, S, D)`` after a directory move
  ``S -> D`` in the same batch, with nothing naming ``s`` or its ancestors up to ``S`` since, is
  already done by the directory move: dropped.
- A deleted directory stays in ``gone`` alone: records under it are dropped (covered), but only
  while nothing brought the path back: a directory deleted and then recreated, moved onto, or
  brought back by a move onto one of its ancestors keeps its children's records (stale rows there
  still need their stat).
- A created directory goes in ``touched`` (the worker lists it: files may have been written before
  its watch existed).
- Collapse: a root with more than ``root_threshold`` distinct paths in ``touched | gone`` becomes
  that root in ``rescan``; then a directory with more than ``dir_threshold`` of its direct entries
  in ``touched | gone`` becomes that directory in ``rescan``. Paths under a rescan directory, and
  rescan directories under another, are dropped. Moves are never collapsed (they carry metadata).

Paths are ``str`` as watchdog gives them (absolute, ``/``-separated, no trailing ``/``; they may
hold surrogate escapes). Cost: about linear in the number of changes (a directory move visits the
pending records under its source and destination only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from assetd.live.change import Change as Change  # re-exported: the unit of a batch
from assetd.live.change import Kind as Kind
from assetd.paths import rebase

__all__ = ["Batch", "Change", "Kind", "coalesce"]


@dataclass(frozen=True, slots=True)
class Batch:
    """What the worker must do for one flush; see the module docstring for the order."""

    moves: tuple[Change, ...] = ()
    """MOVED changes, in the order they must be applied."""
    gone: frozenset[str] = frozenset()
    """Paths last seen deleted (a directory stands for everything under it)."""
    touched: frozenset[str] = frozenset()
    """Paths created or modified (a directory is listed)."""
    rescan: frozenset[str] = frozenset()
    """Directories whose whole subtree must be reconciled."""
    size: int = 0
    """How many raw changes went in (for logging)."""

    @property
    def empty(self) -> bool:
        """True when there is nothing to do (every change cancelled or carried nothing)."""
        return not (self.moves or self.gone or self.touched or self.rescan)


def coalesce(
    changes: Iterable[Change],
    *,
    dir_threshold: int = 1000,
    root_threshold: int = 10000,
    roots: Sequence[str] = (),
) -> Batch:
    """Fold ``changes`` (in arrival order) into one :class:`Batch`; see the module docstring."""
    folder = _Folder()
    folder.feed_all(changes)
    return folder.result(dir_threshold=dir_threshold, root_threshold=root_threshold, roots=roots)


# --- internals ---------------------------------------------------------------------------------


def _parent(path: str) -> str:
    """``posixpath.dirname`` for normalised paths, without its generality (this is the hot path)."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else path[: cut + 1]


def _self_and_ancestors(path: str) -> Iterator[str]:
    while True:
        yield path
        parent = _parent(path)
        if parent == path or not parent:
            return
        path = parent


def _has_ancestor_in(path: str, dirs: Collection[str], *, strict: bool) -> bool:
    """True when ``path`` (or, unless strict, ``path`` itself) has an ancestor in ``dirs``."""
    if not dirs:
        return False
    walk = _self_and_ancestors(path)
    if strict:
        next(walk)
    return any(p in dirs for p in walk)


class _MemoUnder:
    """Whether a path lies at or under one of ``tops``, remembered per parent directory."""

    __slots__ = ("memo", "tops")

    def __init__(self, tops: Collection[str]) -> None:
        self.tops = tops
        self.memo: dict[str, bool] = {}

    def strictly(self, path: str) -> bool:
        """Whether ``path`` lies strictly under one of the tops."""
        if not self.tops:
            return False
        parent = _parent(path)
        if parent == path or not parent:
            return False
        hit = self.memo.get(parent)
        if hit is None:
            hit = self.memo[parent] = _has_ancestor_in(parent, self.tops, strict=False)
        return hit

    def __call__(self, path: str) -> bool:
        return bool(self.tops) and (path in self.tops or self.strictly(path))


@dataclass(slots=True)
class _Record:
    gone: bool
    covers: bool = False  # a deleted directory nothing has brought back: its subtree is gone too


class _Records:
    """path -> _Record, indexed by directory so a subtree is found without a full scan.

    The index is built on the first subtree look-up (a move), not per record: a batch without
    moves (a burst of deletions) never needs it."""

    __slots__ = ("by_path", "kids")

    def __init__(self) -> None:
        self.by_path: dict[str, _Record] = {}
        # directory -> entries right under it that hold a record or lead to one (None: not
        # built yet)
        self.kids: dict[str, set[str]] | None = None

    def get(self, path: str) -> _Record | None:
        return self.by_path.get(path)

    def __contains__(self, path: str) -> bool:
        return path in self.by_path

    def __setitem__(self, path: str, record: _Record) -> None:
        if self.kids is not None and path not in self.by_path:
            self._link(self.kids, path)
        self.by_path[path] = record

    def pop(self, path: str) -> _Record | None:
        record = self.by_path.pop(path, None)
        if record is not None and self.kids is not None:
            self._unlink(self.kids, path)
        return record

    def under(self, top: str) -> list[str]:
        """Paths with a record at or under ``top``."""
        kids = self.kids
        if kids is None:
            kids = self.kids = {}
            for path in self.by_path:
                self._link(kids, path)
        found = [top] if top in self.by_path else []
        stack = list(kids.get(top, ()))
        while stack:
            path = stack.pop()
            if path in self.by_path:
                found.append(path)
            stack.extend(kids.get(path, ()))
        return found

    @staticmethod
    def _link(kids: dict[str, set[str]], path: str) -> None:
        while True:
            parent = _parent(path)
            if parent == path or not parent:
                return
            siblings = kids.get(parent)
            if siblings is not None:  # the parent is linked already
                siblings.add(path)
                return
            kids[parent] = {path}
            path = parent

    def _unlink(self, kids: dict[str, set[str]], path: str) -> None:
        while path not in self.by_path and not kids.get(path):
            kids.pop(path, None)
            parent = _parent(path)
            siblings = kids.get(parent)
            if parent == path or siblings is None:
                return
            siblings.discard(path)
            path = parent


@dataclass(slots=True)
class _Move:
    src: str
    dest: str
    is_dir: bool


class _Folder:
    """The state of one coalescing run; ``feed`` each change, then take ``result``."""

    def __init__(self) -> None:
        self.size = 0
        self.seq = 0
        # path -> last state, in the namespace after every move fed so far
        self.records = _Records()
        # every move that is not a no-op or a synthetic sub-move, in arrival order (folded later)
        self.moves: list[_Move] = []
        # (src, dest) of each directory move fed -> its seq (to recognise synthetic sub-moves)
        self.dir_moves: dict[tuple[str, str], int] = {}
        # path -> seq of the latest change that named it, once a directory move was fed (what
        # came before every directory move never makes a sub-move look newer than it)
        self.seen: dict[str, int] = {}

    def feed(self, change: Change) -> None:
        self.size += 1
        kind = change.kind
        if kind is Kind.MODIFIED and change.is_dir:
            return
        self.seq += 1
        path = change.path
        if kind is Kind.MOVED:
            assert change.dest is not None  # Change.__post_init__ guarantees it
            self._move(path, change.dest, change.is_dir)
            return
        if self.dir_moves:
            self.seen[path] = self.seq
        record = self.records.get(path)
        if kind is Kind.DELETED:
            if record is None:
                self.records[path] = _Record(gone=True, covers=change.is_dir)
            else:
                record.gone, record.covers = True, change.is_dir
        elif record is None:  # CREATED or file MODIFIED
            self.records[path] = _Record(gone=False)
        else:
            record.gone = record.covers = False

    def feed_all(self, changes: Iterable[Change]) -> None:
        """:meth:`feed` each change. Until the first move, what ``feed`` does is done here
        inline (a burst of deletions: no subtree index, no sequence numbers to keep yet)."""
        by_path = self.records.by_path
        fed = 0
        it = iter(changes)
        for change in it:
            kind = change.kind
            if kind is Kind.MOVED:
                self.size += fed
                self.seq += fed
                self.feed(change)
                for rest in it:
                    self.feed(rest)
                return
            fed += 1
            record = by_path.get(change.path)
            if kind is Kind.DELETED:
                if record is None:
                    by_path[change.path] = _Record(gone=True, covers=change.is_dir)
                else:
                    record.gone, record.covers = True, change.is_dir
            elif kind is Kind.MODIFIED and change.is_dir:
                self.seq -= 1  # counted in size, not in seq (as feed does)
            elif record is None:
                by_path[change.path] = _Record(gone=False)
            else:
                record.gone = record.covers = False
        self.size += fed
        self.seq += fed

    def _move(self, src: str, dest: str, is_dir: bool) -> None:
        if src == dest or self._already_moved(src, dest):
            return
        self.seen[src] = self.seen[dest] = self.seq
        if is_dir:
            self.dir_moves[src, dest] = self.seq
        self.moves.append(_Move(src, dest, is_dir))
        records = self.records
        if is_dir:
            for p in records.under(dest):
                record = records.get(p)
                if record is not None and record.covers and p != dest:
                    record.covers = False  # the moved directory may bring this path back
        moving = records.under(src) if is_dir else [src] if src in records else []
        moved = [(p, records.pop(p)) for p in moving]
        records.pop(dest)  # the move replaces what stood at dest
        for p, record in moved:
            assert record is not None
            records[rebase(p, src, dest)] = record

    def _already_moved(self, src: str, dest: str) -> bool:
        """A synthetic sub-move: an earlier directory move in this batch already moved ``src``."""
        if not self.dir_moves:
            return False
        seen = self.seen
        newest = seen.get(src, -1)  # the newest change naming src or an ancestor up to the dir
        child = src
        for parent in _self_and_ancestors(_parent(src)):
            if parent == child:
                break
            newest = max(newest, seen.get(parent, -1))
            rest = src[len(parent) :] if not parent.endswith("/") else src[len(parent) - 1 :]
            if len(dest) > len(rest) and dest.endswith(rest):
                at = self.dir_moves.get((parent, dest[: len(dest) - len(rest)]))
                if at is not None and newest <= at:
                    return True
            child = parent
        return False

    def result(self, *, dir_threshold: int, root_threshold: int, roots: Sequence[str]) -> Batch:
        moves = self.moves  # never folded: ``a -> b, b -> c`` is not ``a -> c`` (module docstring)
        entries = self.records.by_path
        final = {p: r.gone for p, r in entries.items()}
        gone_dirs = {p for p, r in entries.items() if r.covers}
        if gone_dirs:
            covered = _MemoUnder(gone_dirs)
            final = {p: g for p, g in final.items() if not covered.strictly(p)}

        per_dir = Counter(map(_parent, final))  # each path counted in its directory
        rescan: set[str] = set()
        root_set = {r if r == "/" else r.rstrip("/") for r in roots}
        if root_set:
            rescan.update(_crowded_roots(final, per_dir, root_set, root_threshold))
        if rescan:  # a collapsed root's paths do not count toward its directories
            collapsed = _MemoUnder(rescan)
            per_dir = Counter(_parent(p) for p in final if not collapsed(p))
        rescan.update(d for d, n in per_dir.items() if n > dir_threshold)
        rescan = {d for d in rescan if not _has_ancestor_in(d, rescan, strict=True)}

        if rescan:
            collapsed = _MemoUnder(rescan)
            final = {p: g for p, g in final.items() if not collapsed(p)}
        return Batch(
            moves=tuple(Change(Kind.MOVED, m.src, is_dir=m.is_dir, dest=m.dest) for m in moves),
            gone=frozenset(p for p, g in final.items() if g),
            touched=frozenset(p for p, g in final.items() if not g),
            rescan=frozenset(rescan),
            size=self.size,
        )


def _crowded_roots(
    final: Collection[str], per_dir: Counter[str], root_set: Collection[str], threshold: int
) -> list[str]:
    """The roots with more than ``threshold`` of the paths in ``final`` (a root's own path
    counts toward itself; any other path toward the innermost root at or above its
    directory)."""
    per_root: Counter[str] = Counter()
    for parent, n in per_dir.items():
        root = next((a for a in _self_and_ancestors(parent) if a in root_set), None)
        if root is not None:
            per_root[root] += n
    for root in root_set:
        if root in final:  # counted above in its parent's root, if any: it counts toward itself
            outer = _parent(root)
            if outer != root and outer:
                above = next((a for a in _self_and_ancestors(outer) if a in root_set), None)
                if above is not None:
                    per_root[above] -= 1
            per_root[root] += 1
    return [r for r, n in per_root.items() if n > threshold]
