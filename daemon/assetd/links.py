"""The symlink rules (DESIGN §5), in one place for the live path, reconcile and the walk.

A path is looked at with ``lstat`` first. A regular file is a file and a directory a directory.
A symlink is resolved:

- to a directory: walked only with ``follow_symlinks`` (:data:`LINKDIR` otherwise: not walked,
  not catalogued; rows at or under its path are gone);
- to a regular file inside a root (or anywhere with ``follow_symlinks``): catalogued at its own
  path with its target's size, mtime and content;
- to a regular file outside every root: catalogued as a link, with its *own* lstat figures,
  ``is_link`` set, and never read or hashed (``asset_cache_states.is_symlink``);
- broken, or to a FIFO, socket or device: nothing to catalogue.

A loop needs a walk to exist; the walk cuts it (``assetd.walk``), and a live change never walks
a directory symlink without ``follow_symlinks``.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from assetd.paths import is_under

StatFn = Callable[[str], os.stat_result]

FILE, DIR, LINKDIR, GONE, OTHER = "file", "dir", "linkdir", "gone", "other"

# errno values meaning "this path does not lead to anything" (for a symlink: it is broken).
_GONE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


@dataclass(frozen=True, slots=True)
class Entry:
    """What the catalog makes of one path: ``kind``, the figures to record (``st``), and whether
    it is catalogued as a link (its own figures; never read)."""

    kind: str
    st: os.stat_result | None = None
    is_link: bool = False


class LinkRules:
    """The rules for the roots at ``root_paths`` (every root of this host: "outside every root"
    is judged against all of them). ``lstat`` is a seam for tests."""

    def __init__(self, root_paths: Iterable[str], *, lstat: StatFn = os.lstat) -> None:
        self._real = {p: os.path.realpath(p) for p in root_paths}
        self._roots = tuple(sorted(set(self._real.values())))
        self._lstat = lstat
        self._dirs: dict[str, str] = {}  # directory -> its realpath, until clear()
        self._direct: dict[tuple[str, str], bool] = {}  # reached_directly's, until clear()

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the directory caches (a walk hands its rules to worker processes)."""
        return {**self.__dict__, "_dirs": {}, "_direct": {}}

    @property
    def plain_lstat(self) -> bool:
        """Whether paths are looked at with ``os.lstat`` itself (no test's seam): a caller may
        then read the same figures another way (one ``statx``, :mod:`assetd.statx`)."""
        return self._lstat is os.lstat

    def fresh(self) -> LinkRules:
        """The same rules with a directory cache of their own (for another thread)."""
        return LinkRules(self._real, lstat=self._lstat)

    def clear(self) -> None:
        """Forget the directories resolved so far (call once per batch or flush: within one,
        the disk is taken as it was when first looked at)."""
        self._dirs.clear()
        self._direct.clear()

    def _real_dir(self, directory: str) -> str:
        real = self._dirs.get(directory)
        if real is None:
            if len(self._dirs) > 10_000:
                self._dirs.clear()
            real = self._dirs[directory] = os.path.realpath(directory)
        return real

    def reached_directly(self, os_path: str, root_path: str) -> bool:
        """Whether ``os_path`` is reached from ``root_path`` without a directory symlink on
        the way (its directory, resolved, is still in that root)."""
        head, slash, _ = os_path.rpartition("/")  # os.path.dirname of an absolute normal path
        directory = (head or "/") if slash and os_path[0] == "/" else os.path.dirname(os_path)
        known = self._direct.get((directory, root_path))
        if known is None:
            real_root = self._real.get(root_path) or os.path.realpath(root_path)
            known = is_under(self._real_dir(directory), real_root)
            if len(self._direct) > 10_000:
                self._direct.clear()
            self._direct[(directory, root_path)] = known
        return known

    def inside(self, os_path: str) -> bool:
        """Whether ``os_path``, all symlinks resolved, lies in a root."""
        real = os.path.realpath(os_path)
        return any(is_under(real, root) for root in self._roots)

    def entry(self, os_path: str, *, follow: bool = False, root: str | None = None) -> Entry:
        """The :class:`Entry` for ``os_path`` (in the root at ``root``, when given: a path
        reached through a directory symlink is :data:`GONE` without ``follow``). Raises
        ``FileNotFoundError`` / ``NotADirectoryError`` when nothing is there, other ``OSError``
        when it cannot be told (EACCES, EIO): unknown is not gone."""
        st = self._lstat(os_path)
        if root is not None and not follow and not self.reached_directly(os_path, root):
            return Entry(GONE)
        mode = st.st_mode
        if stat_mod.S_ISREG(mode):
            return Entry(FILE, st)
        if stat_mod.S_ISDIR(mode):
            return Entry(DIR, st)
        if not stat_mod.S_ISLNK(mode):
            return Entry(OTHER, st)
        return self.link(os_path, st, follow=follow)

    def link(self, os_path: str, own: os.stat_result, *, follow: bool = False) -> Entry:
        """The :class:`Entry` of the symlink at ``os_path`` whose own lstat is ``own``."""
        try:
            target = os.stat(os_path)
        except OSError as err:
            if err.errno in _GONE:
                return Entry(GONE)  # broken (or a loop of links)
            raise
        if stat_mod.S_ISDIR(target.st_mode):
            return Entry(DIR, target) if follow else Entry(LINKDIR, own)
        if not stat_mod.S_ISREG(target.st_mode):
            return Entry(OTHER, target)
        if follow or self.inside(os_path):
            return Entry(FILE, target)
        return Entry(FILE, own, is_link=True)

    def readable_path(self, os_path: str, *, follow: bool = False) -> str | None:
        """The path to open (with ``O_NOFOLLOW``) to read the content catalogued at
        ``os_path``: itself for a regular file, its resolved target for a link that takes its
        target's content; None for a link catalogued as a link (never read)."""
        try:
            st = os.lstat(os_path)
        except OSError:
            return os_path  # the open fails and says why
        if not stat_mod.S_ISLNK(st.st_mode):
            return os_path
        if follow or self.inside(os_path):
            return os.path.realpath(os_path)
        return None
