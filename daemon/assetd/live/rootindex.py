"""Which configured root a changed path lies in, and whether that root's ignore rules drop it.

The worker asks this once per path of every batch; a burst of 100,000 deletions in 1,000
directories asks it 100,000 times for 1,000 directories. The answer for a path is the answer for
its directory (the root and the directory's own components) plus its last name, so the directory
part is remembered: a path then costs one dict look-up and one name check.
"""

from __future__ import annotations

from collections.abc import Iterable

from assetd.catalog.roots import RootSpec
from assetd.fsutil import IgnoreRules
from assetd.paths import is_strictly_under, is_under, relative_to

MEMO_LIMIT = 65_536
"""Directories remembered at most (then the memo starts afresh): a few MiB."""


class RootIndex:
    """Which configured root a path lies in, and whether the root's ignore rules drop it."""

    def __init__(self, roots: Iterable[RootSpec]) -> None:
        self.roots = sorted(roots, key=lambda r: len(r.path), reverse=True)
        self._ignore = {r.id: IgnoreRules(r.ignore) for r in self.roots}
        # directory -> the root a path right inside it lies in, with that root's rules, or
        # None when that is no root or the directory itself is ignored
        self._dirs: dict[str, tuple[RootSpec, IgnoreRules] | None] = {}

    def root_of(self, path: str) -> RootSpec | None:
        """The root ``path`` lies strictly below and is not ignored in; else None."""
        cut = path.rfind("/")
        if cut < 0 or cut == len(path) - 1:
            return self._slow(path)  # not a normalised path: no memo
        directory = path[:cut] or "/"
        try:
            hit = self._dirs[directory]
        except KeyError:
            hit = self._directory(directory)
        if hit is None:
            return None
        root, rules = hit
        return None if rules.name_ignored(path[cut + 1 :]) else root

    def locate(self, directory: str) -> tuple[RootSpec, IgnoreRules] | None:
        """The root of the entries right inside ``directory`` (a normalised path) with its
        rules, or None (no root, or ignored there): :meth:`root_of` for each entry is this
        root unless its rules ignore the entry's name."""
        try:
            return self._dirs[directory]
        except KeyError:
            return self._directory(directory)

    def _slow(self, path: str) -> RootSpec | None:
        for root in self.roots:
            if is_strictly_under(path, root.path):
                rel = relative_to(path, root.path) or ""
                return None if self._ignore[root.id].is_ignored(rel) else root
        return None

    def _directory(self, directory: str) -> tuple[RootSpec, IgnoreRules] | None:
        """The root of the entries of ``directory`` (the longest root at or above it), unless
        that root's rules ignore one of the directory's own components."""
        found: tuple[RootSpec, IgnoreRules] | None = None
        for root in self.roots:  # longest path first: the innermost root decides
            if is_under(directory, root.path):
                rules = self._ignore[root.id]
                rel = relative_to(directory, root.path) or ""
                found = None if rules.is_ignored(rel) else (root, rules)
                break
        if len(self._dirs) >= MEMO_LIMIT:
            self._dirs.clear()
        self._dirs[directory] = found
        return found

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.roots]
