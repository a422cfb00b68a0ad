"""Which directories of a root changed since a time: what a rescan after lost events must read.

A change to a directory's entries (a file or directory created, deleted, renamed in or out)
sets that directory's ctime; a change to a file (a write, a truncate, a chmod) sets the file's.
Neither can be set back by a user. So after an overflow that lost events from wall time
``since`` on, every lost change is in a directory whose own ctime, or one of whose files'
ctime, is ``since`` or later: :func:`touched_dirs` finds those directories by a walk of the
root that stats each directory, and each file only in directories whose own ctime is older
(the first new file ends that directory's look). Each is named alone, in path order: the rescan
reads a named directory's own files (:mod:`assetd.reconcile_dirs`), and the walk goes on into
every subdirectory either way (a file changed two levels down names that directory only).

The timestamps come from the kernel's coarse clock and the filesystem's granularity (1 or 2 s
on some): :data:`SLACK` seconds are taken off ``since``. A wall clock stepped back between
the loss and the rescan would hide changes: the caller reconciles the whole root when
``since`` is in the future. A directory that cannot be listed is named (the rescan applies the
walk's rules to it). A file symlink names its directory: its row holds its target's figures
(DESIGN §5), whose ctime is the target's. Nothing here touches the catalog.

The look comes in two parts, so the common loss is read first: ``files=False`` stats the
directories only (a burst of deletions, creations and renames sets their ctimes: a thousand
``stat`` calls for a thousand directories); then ``skip`` those already read, and
``files=True`` finds the files written in place elsewhere (a ``stat`` per file of each
unchanged directory: most of the cost, on a large tree). The first look lists only directories
with subdirectories: a directory's link count is 2 plus its subdirectories on ext4, XFS and
tmpfs, so one of 2 has none (``find``'s leaf optimisation; a filesystem that counts otherwise,
btrfs's 1, is listed). Where a count lied, the second look, which lists every directory and
names one whose own ctime is new as well, still finds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import NamedTuple

__all__ = ["SLACK", "Touched", "touched_dirs"]

SLACK = 2.0
"""Seconds taken off ``since``: the coarse clock's lag and a 2 s timestamp granularity."""


class Touched(NamedTuple):
    """What :func:`touched_dirs` found: the changed directories, and how many it walked."""

    dirs: list[str]
    walked: int


def touched_dirs(
    top: str,
    since: float,
    *,
    ignored: Callable[[str], bool] | None = None,
    slack: float = SLACK,
    files: bool = True,
    skip: Collection[str] = (),
) -> Touched:
    """The directories at or below ``top`` (an os path) whose entries or files changed at wall
    time ``since`` minus ``slack`` or later, in path order; ``ignored(name)``: a name the root
    ignores (its directory is not walked, its file not looked at). ``top`` gone: ``[top]``.
    ``files`` False: only the directories' own ctimes are looked at; ``skip``: directories
    walked through but never named (read already)."""
    after = int((since - slack) * 1_000_000_000)
    found: list[str] = []
    stack = [top]
    walked = 0
    while stack:
        path = stack.pop()
        walked += 1
        named = path not in skip  # may be named (not read already)
        try:
            st = os.stat(path) if path == top else os.lstat(path)
            changed = named and st.st_ctime_ns >= after
            if not files and st.st_nlink == 2:  # no subdirectory (ext4, XFS, tmpfs count them)
                if changed:  # not listed: its files are not looked at here anyway
                    found.append(path)
                continue
            with os.scandir(path) as listing:
                entries = list(listing)
        except OSError:  # gone since its parent was listed, or unreadable: the rescan decides
            if named:
                found.append(path)
            continue
        for entry in entries:
            if ignored is not None and ignored(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif (
                    files
                    and named
                    and not changed
                    and (
                        entry.is_symlink() or entry.stat(follow_symlinks=False).st_ctime_ns >= after
                    )
                ):
                    changed = True
            except OSError:  # gone since the listing: a change after the loss, seen live
                continue
        if changed:
            found.append(path)
    found.sort(key=os.fsencode)
    return Touched(found, walked)
