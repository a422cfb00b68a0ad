"""Directory handle -> path, kept right in event order across renames and deletions. No threads.

fanotify names a changed entry by its directory's file handle and its name. :class:`HandleTree`
maps a handle to a path without a system call for every directory it has seen: each directory is
a node with a parent node and a name, so a rename moves one node and everything below it follows.

- A root is a node with a fixed path (:meth:`HandleTree.add_root`).
- A directory created or renamed (its handle comes with the event) becomes a child node of its
  parent's node, at the event's time: a directory created and filled at once is resolved exactly.
- Any other handle is looked up with ``lookup`` (``open_by_handle_at`` + ``/proc/self/fd``) and
  becomes an *anchor*: linked to the root holding it with its relative path as the name, or
  marked outside (its events are dropped). A rename of a directory re-links the anchors under its
  old path. ``lookup`` answers for *now*; an event older than a directory rename still in the
  queue would get the new path, so the reader treats moves through a fresh anchor with care.
- A handle that ``lookup`` finds gone (ESTALE) is placed by the deletion or rename that removed
  it, from ``pending`` (handle -> the entry it had, from events read but not applied yet). When
  nothing places it the answer is None: the caller rescans instead of guessing a path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping

from assetd.live.fanotify_sys import Entry
from assetd.paths import is_under

Lookup = Callable[[bytes], "str | None"]
"""handle -> its path now, None when it is outside every mount the reader can see; raises
OSError (ESTALE: gone)."""

MAX_NODES = 200_000
"""Past this many nodes the tree forgets every non-root node (they are looked up again)."""


class Node:
    __slots__ = ("alive", "name", "parent", "path")

    def __init__(self, parent: Node | None, name: str, path: str | None = None) -> None:
        self.parent = parent
        self.name = name
        self.path = path  # roots only
        self.alive = True


_OUTSIDE = Node(None, "")
"""The parent of every anchor outside all roots: its descendants have no path."""
_OUTSIDE.alive = True


def _join(parent: str, name: str) -> str:
    return parent + name if parent.endswith("/") else f"{parent}/{name}"


class HandleTree:
    """See the module docstring. Used by one thread (the group's reader)."""

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._nodes: dict[bytes, Node] = {}
        self._roots: dict[str, Node] = {}  # path -> root node
        self._root_keys: dict[bytes, str] = {}
        self._anchors: set[Node] = set()  # nodes hanging off a root with a relative path
        self._outside_keys: set[bytes] = set()  # handles of directories found outside every root
        self._memo: dict[bytes, tuple[Node, str | None]] = {}  # resolve's answers until a change
        self.lookups = 0
        self.fresh: set[Node] = set()
        """Anchors inside a root looked up since the caller last cleared it: their path is the
        one of now, not of the event's time (:meth:`is_fresh`)."""

    # --- roots ------------------------------------------------------------------------------

    def add_root(self, key: bytes, path: str) -> None:
        node = Node(None, "", path)
        self._roots[path] = node
        self._root_keys[key] = path
        self._nodes[key] = node
        self._forget_anchors()  # anchors may belong to the new root now

    def remove_root(self, path: str) -> None:
        self._roots.pop(path, None)
        for key in [k for k, p in self._root_keys.items() if p == path]:
            del self._root_keys[key]
            self._nodes.pop(key, None)
        self._forget_anchors()

    @property
    def outside_keys(self) -> set[bytes]:
        """The handles of directories known outside every root (the set itself, kept current:
        :class:`~assetd.live.fanotify_sys.OutsideFilter` shares it)."""
        return self._outside_keys

    @property
    def root_keys(self) -> dict[bytes, str]:
        """Each root directory's handle -> its path (the dict itself, kept current)."""
        return self._root_keys

    def root_of_key(self, key: bytes | None) -> str | None:
        """The root whose own directory has handle ``key``."""
        return None if key is None else self._root_keys.get(key)

    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    def is_fresh(self, node: Node) -> bool:
        """``node`` or a directory above it is in :attr:`fresh`."""
        while node.parent is not None:
            if node in self.fresh:
                return True
            node = node.parent
        return False

    # --- resolution ---------------------------------------------------------------------------

    def path_of(self, node: Node) -> str | None:
        """The node's path; None when it is outside every root or below a gone directory."""
        names: list[str] = []
        while node.path is None:
            parent = node.parent
            if parent is None or not node.alive or parent is _OUTSIDE:
                return None
            names.append(node.name)
            node = parent
        if not node.alive:
            return None
        path = node.path
        for name in reversed(names):
            path = _join(path, name)
        return path

    def _outside(self, node: Node) -> bool:
        while node.parent is not None and node.alive:
            if node.parent is _OUTSIDE:
                return True
            node = node.parent
        return False

    def resolve(
        self, key: bytes, pending: Mapping[bytes, Entry], _depth: int = 0
    ) -> tuple[Node, str | None] | None:
        """Directory ``key``'s node and path (None: outside every root), known, looked up, or
        placed by ``pending``; None when it is gone and nothing read places it."""
        known = self._memo.get(key)
        if known is not None:
            return known
        node = self._nodes.get(key)
        if node is not None:
            path = self.path_of(node)
            if path is not None or self._outside(node):
                if len(self._memo) > MAX_NODES:
                    self._memo.clear()
                self._memo[key] = node, path
                return node, path
        if len(self._nodes) > MAX_NODES:
            self._forget_anchors()
        try:
            self.lookups += 1
            now = self._lookup(key)
        except OSError as err:
            if err.errno not in (errno.ESTALE, errno.ENOENT) or _depth > 64:
                raise
            entry = pending.get(key)
            if entry is None:
                return None
            parent = self.resolve(entry.dir_handle, pending, _depth + 1)
            if parent is None:
                return None
            node = self._child(key, parent[0], os.fsdecode(entry.name))
            return node, self.path_of(node)
        node = self._anchor(key, now)
        if node.parent is not None and node.parent is not _OUTSIDE:
            self.fresh.add(node)
        return node, self.path_of(node)

    def _anchor(self, key: bytes, path: str | None) -> Node:
        root = self._root_for(path) if path is not None else None
        if root is None or path is None:
            node = Node(_OUTSIDE, "")
            self._outside_keys.add(key)
        elif path == root:
            node = self._roots[root]
        else:
            node = Node(self._roots[root], path[len(root) :].lstrip("/"))
            self._anchors.add(node)
        self._nodes[key] = node
        return node

    def _child(self, key: bytes, parent: Node, name: str) -> Node:
        self._memo.clear()
        node = self._nodes.get(key)
        if node is None or node.path is not None:
            node = Node(parent, name)
            self._nodes[key] = node
        else:
            self._anchors.discard(node)
            node.parent, node.name, node.alive = parent, name, True
        return node

    def _root_for(self, path: str) -> str | None:
        best = None
        for root in self._roots:
            if (path == root or is_under(path, root)) and (best is None or len(root) > len(best)):
                best = root
        return best

    # --- changes, applied in event order ------------------------------------------------------

    def outside(self, target: bytes) -> None:
        """A directory was created outside every root: remember it is (other processes' short-
        lived directories are then neither looked up nor found gone)."""
        if target not in self._nodes:
            self._nodes[target] = Node(_OUTSIDE, "")
            self._outside_keys.add(target)

    def created(self, parent: Node, name: str, target: bytes | None) -> None:
        """A directory ``name`` was created in ``parent`` (its handle ``target``)."""
        if target is not None and target not in self._root_keys:
            self._child(target, parent, name)

    def deleted(self, target: bytes | None) -> None:
        """A directory was removed: forget it (its entries went before it)."""
        if target is None or target in self._root_keys:
            return
        self._memo.clear()
        node = self._nodes.pop(target, None)
        if node is not None:
            node.alive = False
            self._anchors.discard(node)

    def renamed(
        self,
        old_path: str | None,
        new_parent: Node,
        name: str,
        target: bytes | None,
        *,
        from_outside: bool = False,
    ) -> None:
        """A directory moved from ``old_path`` (None: unknown, or outside every root when
        ``from_outside``) to ``name`` in ``new_parent``. A directory coming in from outside may
        hold directories known as outside: those are forgotten (looked up again)."""
        self._memo.clear()
        if from_outside and self.path_of(new_parent) is not None:
            for key in self._outside_keys:
                node = self._nodes.pop(key, None)
                if node is not None:
                    node.alive = False
            self._outside_keys.clear()
        if target is not None and target not in self._root_keys:
            moved = self._child(target, new_parent, name)
        else:
            moved = None
        if old_path is None:
            if not from_outside:
                self._forget_anchors()  # which anchors were below it is not known
            return
        for anchor in [a for a in self._anchors if self._under(a, old_path)]:
            self._anchors.discard(anchor)
            path = self.path_of(anchor)
            rest = path[len(old_path) :].lstrip("/") if path is not None else ""
            if moved is not None and rest:
                anchor.parent, anchor.name = moved, rest
                self._anchors.add(anchor)  # still below a root by a relative path
            else:
                anchor.alive = False

    def _under(self, anchor: Node, top: str) -> bool:
        path = self.path_of(anchor)
        return path is not None and is_under(path, top)

    def _forget_anchors(self) -> None:
        self._memo.clear()
        self._outside_keys.clear()
        for key in [k for k, n in self._nodes.items() if n.path is None]:
            self._nodes.pop(key).alive = False
        self._anchors.clear()

    def __len__(self) -> int:
        return len(self._nodes)
