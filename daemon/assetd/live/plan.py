"""The worker's stat phase: what the disk says, at flush time, of each path a batch names.

A regular file is seeded, restored or refreshed (its figures and birth time are kept here); an
absent path is gone (its row, and every row under it, is marked missing); a directory is listed
by a subtree reconcile; a FIFO, socket or device is skipped (DESIGN §5).

A path is looked at with one ``lstat`` (through :class:`~assetd.links.LinkRules`). A batch that
names many paths of one directory (a burst of deletions: 100 per directory) lists that directory
once instead, and a name not in the listing is gone without a ``lstat`` of its own: the listing
is as much the disk at flush time as the ``lstat`` calls were, and costs one ``getdents`` per
few hundred names against a path lookup per name. A name still listed is looked at as before.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from assetd.catalog.roots import RootSpec
from assetd.catalog.states import Figures
from assetd.fsutil import StatFn, encode_path
from assetd.links import DIR, FILE, GONE, LINKDIR, Entry, LinkRules
from assetd.live.rootindex import RootIndex
from assetd.statx import birth_ns

LIST_MIN = 8
"""Paths of one directory in a batch from which the directory is listed once (one ``lstat`` of
the directory and a ``getdents`` or two against a path lookup per path)."""

LIST_BYTES_PER_PATH = 64
LIST_BYTES_FLOOR = 4096
"""A directory is listed only while its size (``st_size``: its entries' space on ext4, XFS,
btrfs and tmpfs; an ext4 directory is at least one 4 KiB block) is at most
``LIST_BYTES_PER_PATH`` per path asked, or ``LIST_BYTES_FLOOR`` (one block: a hundred or two
names): a large directory with a few changed paths is cheaper to ``lstat`` path by path."""

Listdir = Callable[[str], Iterable[str]]


@dataclass(slots=True)
class Plan:
    """What the stat phase found, grouped for bulk statements (catalog paths)."""

    present: dict[int, list[Figures]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    gone: dict[int, list[str]] = field(default_factory=dict)
    directories: list[tuple[RootSpec, str]] = field(default_factory=list)
    arrived: set[str] = field(default_factory=set)  # paths added by moves into a root
    moved_assets: set[int] = field(default_factory=set)  # whose automatic tags may change
    skipped: int = 0  # unreadable, or neither file nor directory: the row is left as it is

    def add(self, root_id: int, path: str, raw: bytes | None, entry: Entry, os_path: str) -> None:
        """A file to seed, restore or refresh, with its birth time (:mod:`assetd.statx`)."""
        st = entry.st
        assert st is not None
        birth = birth_ns(os_path, follow=not entry.is_link)
        self.present.setdefault(root_id, []).append(
            Figures(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, entry.is_link, birth)
        )
        if raw is not None:
            self.raw[path] = raw


def plan_paths(
    paths: Sequence[str],
    index: RootIndex,
    rules: LinkRules,
    *,
    listdir: Listdir | None = os.listdir,
    lstat: StatFn = os.lstat,
) -> Plan:
    """Look at each of ``paths`` (sorted, so a directory's paths are together). ``listdir``
    None: every path gets its own look (a test's stat seam then sees every path)."""
    plan = Plan()
    start = 0
    while start < len(paths):
        directory = _parent(paths[start])
        end = start + 1
        while end < len(paths) and _parent(paths[end]) == directory:
            end += 1
        group, start = paths[start:end], end
        located = index.locate(directory)  # the root of every path here, names aside
        if located is None:
            continue
        root, ignore = located
        ignored = ignore.name_ignored if ignore.patterns else None
        listed = None
        if listdir is not None and len(group) >= LIST_MIN:
            listed = _listing(directory, len(group), listdir, lstat)
        gone = plan.gone.setdefault(root.id, [])
        cut = len(directory) + 1 if directory != "/" else 1
        for os_path in group:
            name = os_path[cut:]
            if ignored is not None and ignored(name):
                continue
            path, raw = encode_path(os_path)
            if listed is not None and name not in listed:
                gone.append(path)
                continue
            _look(plan, root, os_path, path, raw, rules)
        if not gone:
            del plan.gone[root.id]
    return plan


def _look(
    plan: Plan, root: RootSpec, os_path: str, path: str, raw: bytes | None, rules: LinkRules
) -> None:
    try:
        entry = rules.entry(os_path, follow=root.follow_symlinks, root=root.path)
    except (FileNotFoundError, NotADirectoryError):
        plan.gone.setdefault(root.id, []).append(path)
        return
    except OSError:
        plan.skipped += 1  # unreadable: leave the row as it is
        return
    if entry.kind == FILE and entry.st is not None:
        plan.add(root.id, path, raw, entry, os_path)
    elif entry.kind == DIR:
        plan.directories.append((root, os_path))
    elif entry.kind in (GONE, LINKDIR):  # a directory link is never walked (§5)
        plan.gone.setdefault(root.id, []).append(path)
    else:
        plan.skipped += 1  # FIFO, socket, device: never catalogued


def _listing(directory: str, asked: int, listdir: Listdir, lstat: StatFn) -> frozenset[str] | None:
    """The names in ``directory`` by one listing, or None when each path is to be looked at
    (the directory is large, a symlink, not readable, or not a directory now).

    A directory that is gone needs no listing, and no look per path either: an empty set
    (every name in it is gone, as each ``lstat`` would say with ENOENT or ENOTDIR)."""
    try:
        st = lstat(directory)
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    except OSError:
        return None
    room = max(asked * LIST_BYTES_PER_PATH, LIST_BYTES_FLOOR)
    if not stat_mod.S_ISDIR(st.st_mode) or st.st_size > room:
        return None
    try:
        return frozenset(listdir(directory))
    except OSError:  # EACCES (search but no read permission), or it changed meanwhile
        return None


def _parent(path: str) -> str:
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else path[: cut + 1]
