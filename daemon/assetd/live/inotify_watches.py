"""The watch table of one inotify instance: watch descriptor <-> directory path (issue 12).

A directory's watch follows its inode, not its path, so the table is rewritten when a directory
moves. A directory that moves *from* somewhere is detached first (:meth:`WatchTable.detach`):
until its move-to is read, the table cannot say where its watches are. Detached, they map to no
path, and the emitter drops what they report meanwhile (it says that it did, by the move's
cookie). Then either the move-to comes (:meth:`WatchTable.attach`: rewritten under the new path),
or none does (the directory left the root): the detached watches are removed. Before, the watches
of a directory moved out stayed in the table until the end of the read, and a rename of one of
its parents in the same read rewrote them too: a move out of the moved-away tree read as a move
within the root, at paths where no file ever was (the stateful test's example 455).
"""

from __future__ import annotations

__all__ = ["WatchTable"]


class WatchTable:
    """``paths``: wd -> directory path; ``wds``: directory path -> wd; ``detached``: wd -> the
    cookie of the move that took it (its path unknown until that move's other half)."""

    __slots__ = ("detached", "paths", "wds")

    def __init__(self) -> None:
        self.paths: dict[int, bytes] = {}
        self.wds: dict[bytes, int] = {}
        self.detached: dict[int, int] = {}

    def add(self, wd: int, path: bytes) -> None:
        """``path`` is watched by ``wd`` (the kernel gives an inode watched already its wd)."""
        old = self.paths.get(wd)
        if old is not None and old != path:
            self.wds.pop(old, None)
        self.detached.pop(wd, None)
        self.paths[wd] = path
        self.wds[path] = wd

    def ignored(self, wd: int) -> None:
        """The kernel dropped ``wd`` (``IN_IGNORED``)."""
        self.detached.pop(wd, None)
        path = self.paths.pop(wd, None)
        if path is not None and self.wds.get(path) == wd:
            del self.wds[path]

    def _under(self, top: bytes) -> list[bytes]:
        prefix = top + b"/"
        return [p for p in self.wds if p == top or p.startswith(prefix)]

    def detach(self, top: bytes, cookie: int) -> dict[int, bytes]:
        """The watches of ``top`` and below, taken out of the table by the move ``cookie``;
        returns them (wd -> path as it was)."""
        out: dict[int, bytes] = {}
        for path in self._under(top):
            wd = self.wds.pop(path)
            self.paths.pop(wd, None)
            self.detached[wd] = cookie
            out[wd] = path
        return out

    def attach(self, watches: dict[int, bytes], src: bytes, dest: bytes) -> None:
        """Detached ``watches`` of ``src`` and below are back, at ``dest`` and below."""
        cut = len(src)
        for wd, path in watches.items():
            if self.detached.get(wd) is not None:
                self.add(wd, dest + path[cut:])

    def release(self, watches: dict[int, bytes]) -> list[int]:
        """Detached ``watches`` whose move had no other half here: forgotten. Returns the wds
        to remove from the kernel (not those the table holds again, e.g. re-added by a walk)."""
        gone = [wd for wd in watches if self.detached.pop(wd, None) is not None]
        return [wd for wd in gone if wd not in self.paths]
