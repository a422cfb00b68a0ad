"""assetd.live.fanotify_tree and fanotify_sys.parse_events, pure: handles are made-up bytes, the
lookup is a dict (what open_by_handle_at would answer now)."""

from __future__ import annotations

import errno
import struct

import pytest

from assetd.live import fanotify_sys as fsys
from assetd.live.fanotify_sys import Entry
from assetd.live.fanotify_tree import HandleTree

ROOT = "/srv/lib"


class Disk:
    """What lookup answers now: handle -> path (missing: ESTALE)."""

    def __init__(self) -> None:
        self.now: dict[bytes, str | None] = {}
        self.calls = 0

    def __call__(self, key: bytes) -> str | None:
        self.calls += 1
        if key not in self.now:
            raise OSError(errno.ESTALE, "gone")
        return self.now[key]


@pytest.fixture
def disk() -> Disk:
    return Disk()


@pytest.fixture
def tree(disk: Disk) -> HandleTree:
    t = HandleTree(disk)
    t.add_root(b"R", ROOT)
    return t


def path(tree: HandleTree, key: bytes, pending: dict[bytes, Entry] | None = None) -> str | None:
    found = tree.resolve(key, pending or {})
    assert found is not None
    return found[1]


def test_created_directories_need_no_lookup(tree: HandleTree, disk: Disk) -> None:
    root = tree.resolve(b"R", {})
    assert root is not None and root[1] == ROOT
    tree.created(root[0], "a", b"A")
    a = tree.resolve(b"A", {})
    assert a is not None
    tree.created(a[0], "b", b"B")
    assert path(tree, b"B") == f"{ROOT}/a/b" and disk.calls == 0


def test_a_rename_moves_everything_below_at_once(tree: HandleTree) -> None:
    root = tree.resolve(b"R", {})
    assert root is not None
    tree.created(root[0], "a", b"A")
    tree.created(tree.resolve(b"A", {})[0], "b", b"B")  # type: ignore[index]
    tree.renamed(f"{ROOT}/a", root[0], "z", b"A")
    assert path(tree, b"B") == f"{ROOT}/z/b"


def test_looked_up_directories_are_rebased_by_renames_above_them(
    tree: HandleTree, disk: Disk
) -> None:
    disk.now[b"C"] = f"{ROOT}/a/b/c"
    assert path(tree, b"C") == f"{ROOT}/a/b/c"
    root = tree.resolve(b"R", {})
    assert root is not None
    tree.renamed(f"{ROOT}/a", root[0], "z", b"A")  # a itself was never seen
    assert path(tree, b"C") == f"{ROOT}/z/b/c"
    disk.now[b"B"] = f"{ROOT}/z/b"
    tree.renamed(f"{ROOT}/z/b", root[0], "y", b"B")
    assert path(tree, b"C") == f"{ROOT}/y/c" and disk.calls == 1


def test_outside_every_root_is_no_path(tree: HandleTree, disk: Disk) -> None:
    disk.now[b"O"] = "/var/log"
    disk.now[b"U"] = None  # not reachable from the mount the reader has
    assert path(tree, b"O") is None and path(tree, b"U") is None
    assert path(tree, b"O") is None and disk.calls == 2  # remembered


def test_a_gone_directory_is_placed_by_its_deletion_or_not_at_all(tree: HandleTree) -> None:
    pending = {b"D": Entry(b"P", b"d"), b"P": Entry(b"R", b"p")}
    assert path(tree, b"D", pending) == f"{ROOT}/p/d"
    assert tree.resolve(b"X", pending) is None  # never a guess


def test_a_deleted_directory_is_forgotten(tree: HandleTree, disk: Disk) -> None:
    root = tree.resolve(b"R", {})
    assert root is not None
    tree.created(root[0], "a", b"A")
    tree.created(tree.resolve(b"A", {})[0], "b", b"B")  # type: ignore[index]
    tree.deleted(b"B")
    tree.deleted(b"A")
    assert tree.resolve(b"B", {}) is None  # gone: looked up (ESTALE), nothing places it
    assert disk.calls == 1


def _info(kind: int, handle: bytes, name: bytes = b"") -> bytes:
    body = b"FSIDFSID" + struct.pack("=Ii", len(handle), 1) + handle
    if name:
        body += name + b"\0"
    body += b"\0" * (-(len(body) + 4) % 4)
    return struct.pack("=BBH", kind, 0, len(body) + 4) + body


def test_parse_events_reads_rename_records() -> None:
    records = (
        _info(fsys.INFO_OLD_DFID_NAME, b"dir1", b"a.bin")
        + _info(fsys.INFO_NEW_DFID_NAME, b"dir2", b"b.bin")
        + _info(fsys.INFO_FID, b"file")
    )
    meta = struct.pack("=IBBHQii", 24 + len(records), 3, 0, 24, fsys.FAN_RENAME, -1, 1)
    [event] = fsys.parse_events(meta + records + meta + records)[:1]
    kind = struct.pack("=Ii", 4, 1)
    assert event.mask == fsys.FAN_RENAME and not event.is_dir
    assert event.entry == Entry(b"FSIDFSID" + kind + b"dir1", b"a.bin")
    assert event.new_entry == Entry(b"FSIDFSID" + kind + b"dir2", b"b.bin")
    assert event.target == b"FSIDFSID" + kind + b"file"


def test_directories_created_outside_are_known_outside(tree: HandleTree, disk: Disk) -> None:
    tree.outside(b"T")  # another process's temporary directory
    found = tree.resolve(b"T", {})  # gone since: no lookup, no "unplaced"
    assert found is not None and found[1] is None and disk.calls == 0
    root = tree.resolve(b"R", {})
    assert root is not None
    tree.renamed(None, root[0], "in", b"M", from_outside=True)  # something moved in
    disk.now[b"T"] = f"{ROOT}/in/t"
    assert path(tree, b"T") == f"{ROOT}/in/t"  # looked up again, now inside


def _event(mask: int, *records: bytes) -> bytes:
    body = b"".join(records)
    return struct.pack("=IBBHQii", 24 + len(body), 3, 0, 24, mask, -1, 1) + body


def _key(handle: bytes) -> bytes:
    return b"FSIDFSID" + struct.pack("=Ii", len(handle), 1) + handle


def test_events_in_directories_known_outside_are_dropped_on_the_raw_record() -> None:
    """Another process's changes on the filesystem cost no object and no lookup: an event in a
    directory known outside is skipped while parsing, a directory made there is known outside
    at once, one deleted there is forgotten; a root's own event in its (outside) parent, and
    events with a name, pass; so does everything after a directory rename (it may bring
    outside directories in)."""
    out, root, made = _key(b"out"), _key(b"root"), _key(b"made")
    keys = {out}
    dfid = fsys.INFO_DFID_NAME
    buf = (
        _event(fsys.FAN_CREATE, _info(dfid, b"out", b"tmp.1"), _info(fsys.INFO_FID, b"f1"))
        + _event(fsys.FAN_ATTRIB, _info(fsys.INFO_FID, b"f1"))  # no name: an unlinked file's
        + _event(
            fsys.FAN_CREATE | fsys.FAN_ONDIR,
            _info(dfid, b"out", b"sub"),
            _info(fsys.INFO_FID, b"made"),
        )
        + _event(
            fsys.FAN_DELETE | fsys.FAN_ONDIR,
            _info(dfid, b"out", b"lib"),
            _info(fsys.INFO_FID, b"root"),
        )
        + _event(fsys.FAN_CREATE, _info(dfid, b"in", b"a.bin"), _info(fsys.INFO_FID, b"f2"))
    )
    filtered = fsys.OutsideFilter(keys, {root: ROOT})
    events = fsys.parse_events(buf, filtered)
    assert [e.entry.name for e in events if e.entry] == [b"lib", b"a.bin"]
    assert filtered.dropped == 2 and keys == {out, made}
    assert len(fsys.parse_events(buf)) == 4  # without the filter: only the nameless one goes

    rename = _event(
        fsys.FAN_RENAME | fsys.FAN_ONDIR,
        _info(fsys.INFO_OLD_DFID_NAME, b"out", b"sub"),
        _info(fsys.INFO_NEW_DFID_NAME, b"in", b"sub"),
        _info(fsys.INFO_FID, b"made"),
    )
    later = _event(fsys.FAN_CREATE, _info(dfid, b"made", b"x.bin"), _info(fsys.INFO_FID, b"f3"))
    events = fsys.parse_events(rename + later, filtered)
    assert len(events) == 2 and not filtered.active  # "made" came in: its events are kept
    filtered.rearm()
    assert filtered.active


def test_a_careful_move_s_paths_are_taken_back_through_the_later_renames() -> None:
    """``mv r0/a/b r1/b; mv r0/a r0/z`` read at once: ``a`` looked up after both reads as
    ``r0/z``, so the first move's source reads ``r0/z/b``; it was ``r0/a/b``."""
    from assetd.live.fanotify_group import _Rename, before_renames

    later = [_Rename("/r0/a", "/r0/z", True, False), _Rename("/r1/b/c", "/r0/z/c2", True, False)]
    assert before_renames("/r0/z/b", later) == "/r0/a/b"
    assert before_renames("/r1/b", later) == "/r1/b"
    assert before_renames("/r0/z/c2/f", later) == "/r1/b/c/f"  # through both, the last first
    assert before_renames("/r0/zz", later) == "/r0/zz"  # a sibling with the same prefix
    assert before_renames("/r0/z/f", [_Rename("/r0/a", "/r0/z", False, False)]) == "/r0/z/f"
