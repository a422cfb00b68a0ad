"""Tests for assetd.fsutil, on real directories (tmp_path); the scandir seam only orders races."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import assetd
from assetd.fsutil import (
    FileStat,
    IgnoreRules,
    encode_path,
    get_mtime_ns,
    get_size_and_mtime_ns,
    os_path_of,
    stat_file,
    verify_file_unchanged,
)
from assetd.walk import ScandirFn, WalkProblem, list_files_recursively

BAD = "\udcff\udcfe.bin"  # the OS form of the name b"\xff\xfe.bin" (surrogateescape)
BAD_CATALOG = "\\xff\\xfe.bin"


def touch(path: Path | str | bytes, data: bytes = b"") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def walk(top: Path | str, **kwargs: Any) -> tuple[list[FileStat], list[tuple[str, str]]]:
    problems: list[WalkProblem] = []
    files = list(list_files_recursively(str(top), on_problem=problems.append, **kwargs))
    return files, [(p.path, p.kind) for p in problems]


def paths(files: list[FileStat], top: Path) -> list[str]:
    return [f.path.removeprefix(f"{top}/") for f in files]


# --- path encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("os_path", "catalog", "raw"),
    [
        ("/srv/a b/c.txt", "/srv/a b/c.txt", None),
        ("/srv/été/日本.png", "/srv/été/日本.png", None),
        ("/srv/a\nb", "/srv/a\nb", None),
        (f"/srv/{BAD}", f"/srv/{BAD_CATALOG}", b"/srv/\xff\xfe.bin"),
        ("/srv/caf\udcc3/é", "/srv/caf\\xc3/é", b"/srv/caf\xc3/\xc3\xa9"),
    ],
)
def test_encode_path_and_back(os_path: str, catalog: str, raw: bytes | None) -> None:
    assert encode_path(os_path) == (catalog, raw)
    assert os_path_of(catalog, raw) == os_path


def test_catalog_form_of_a_non_utf8_file_opens_it(tmp_path: Path) -> None:
    touch(os.fsencode(tmp_path) + b"/\xff\xfe.bin", b"x")
    found = stat_file(str(tmp_path / BAD))
    assert found is not None
    assert found.path == f"{tmp_path}/{BAD_CATALOG}"
    assert found.raw == os.fsencode(tmp_path) + b"/\xff\xfe.bin"
    with open(os_path_of(found.path, found.raw), "rb") as f:
        assert f.read() == b"x"


# --- stat helpers --------------------------------------------------------------------------------


def test_get_mtime_and_size(tmp_path: Path) -> None:
    target = tmp_path / "t"
    touch(target, b"12345")
    os.utime(target, ns=(1, 1_700_000_000_123_456_789))
    link = tmp_path / "l"
    link.symlink_to(target)
    assert get_mtime_ns(str(link)) == 1_700_000_000_123_456_789
    assert get_size_and_mtime_ns(str(link)) == (5, 1_700_000_000_123_456_789)
    own = os.lstat(link)
    assert get_size_and_mtime_ns(str(link), follow_symlinks=False) == (
        own.st_size,
        own.st_mtime_ns,
    )
    with pytest.raises(FileNotFoundError):
        get_mtime_ns(str(tmp_path / "nope"))


def test_verify_file_unchanged(tmp_path: Path) -> None:
    f = tmp_path / "f"
    touch(f, b"abc")
    st = os.stat(f)
    assert verify_file_unchanged(str(f), 3, st.st_mtime_ns)
    assert not verify_file_unchanged(str(f), 4, st.st_mtime_ns)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, touched
    assert not verify_file_unchanged(str(f), 3, st.st_mtime_ns)
    touch(f, b"abcd")  # rewritten
    new = os.stat(f)
    assert verify_file_unchanged(str(f), 4, new.st_mtime_ns)
    os.unlink(f)
    assert not verify_file_unchanged(str(f), 4, new.st_mtime_ns)
    d = os.stat(tmp_path)
    assert not verify_file_unchanged(str(tmp_path), d.st_size, d.st_mtime_ns)
    assert not verify_file_unchanged(str(tmp_path / "f" / "under-a-file"), 0, 0)


def test_stat_file(tmp_path: Path) -> None:
    target = tmp_path / "target"
    touch(target, b"hello")
    link = tmp_path / "link"
    link.symlink_to("target")
    (tmp_path / "broken").symlink_to("nowhere")
    (tmp_path / "loop").symlink_to("loop")
    os.mkfifo(tmp_path / "fifo")
    st = os.stat(target)
    assert stat_file(str(target)) == FileStat(str(target), 5, st.st_mtime_ns, st.st_dev, st.st_ino)
    assert stat_file(str(link)) == FileStat(str(link), 5, st.st_mtime_ns, st.st_dev, st.st_ino)
    for absent in ("broken", "loop", "fifo", "nope", "target/x"):
        assert stat_file(str(tmp_path / absent)) is None, absent
    assert stat_file(str(tmp_path)) is None


# --- ignore rules --------------------------------------------------------------------------------


def test_ignore_rules_match() -> None:
    rules = IgnoreRules(["*.tmp", "*.part", ".Trash-*", "@eaDir", "#recycle", "cache[0-9]"])
    assert rules.match("a/b/c.tmp") == "*.tmp"
    assert rules.match("x.tmp/b/c.part") == "*.tmp"  # the first pattern that matches wins
    assert rules.match("a/@eaDir/thumb.jpg") == "@eaDir"
    assert rules.match(".Trash-1000/files/x") == ".Trash-*"
    assert rules.match("a/cache7/b") == "cache[0-9]"
    assert rules.match("a/cacheX/b") is None
    assert rules.match("a/b.tmpx/c") is None
    assert rules.match("A.TMP") is None  # case-sensitive
    assert rules.is_ignored("#recycle")
    assert not rules.is_ignored("./a//b/")
    assert rules.patterns[0] == "*.tmp"
    assert not IgnoreRules([]).is_ignored("a.tmp")


def test_ignore_pattern_with_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="contains '/'"):
        IgnoreRules(["build/tmp"])


PATTERNS = ["*.tmp", ".Trash-*", "@eaDir", "*", "a?c", "[!x]*.bin", "x*y", "[", "*[*"]


@settings(max_examples=50, deadline=None, database=None)
@given(
    st.lists(st.sampled_from(PATTERNS), max_size=4),
    st.text(alphabet="ab.cxy*?[]!@eaDirtmp-T\n", min_size=1, max_size=8),
)
def test_name_ignored_agrees_with_fnmatchcase(patterns: list[str], name: str) -> None:
    expected = any(fnmatch.fnmatchcase(name, p) for p in patterns)
    assert IgnoreRules(patterns).name_ignored(name) is expected
    assert IgnoreRules(patterns).is_ignored(name) is expected


# --- the walk: order -----------------------------------------------------------------------------

TRICKY = ["a", "a.txt", "a-b", "a0", "ab", "a b", "a\nb", "A", "é", "日本", "z", "~", "a\\x", BAD]


def test_walk_order_on_tricky_names(tmp_path: Path) -> None:
    rels = ["a/b", "a/a.txt", "a/b.d/c", "a.txt", "a-b", "a0", "ab", "a b", "a\nb"]
    rels += ["é/x", "日本", "z", "~", "A", "a\\x", BAD, f"d{BAD}/f", "a/Z", "a/!"]
    for rel in rels:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        touch(tmp_path / rel)
    files, problems = walk(tmp_path)
    got = [f.path for f in files]
    expected = sorted(encode_path(f"{tmp_path}/{rel}")[0] for rel in rels)
    assert got == expected
    assert got[0] == f"{tmp_path}/A"
    assert problems == []
    for f in files:  # every figure is the file's own
        assert stat_file(os_path_of(f.path, f.raw)) == f


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[str, ...]]:
    """Paths (component tuples) of a small tree; no path is both a file and a directory."""
    component = st.sampled_from(TRICKY)
    chosen = draw(st.lists(st.lists(component, min_size=1, max_size=3).map(tuple), max_size=12))
    dirs = {p[:i] for p in chosen for i in range(1, len(p))}
    return [p for p in dict.fromkeys(chosen) if p not in dirs]


@settings(max_examples=50, deadline=None, database=None)
@given(trees())
def test_walk_yields_every_file_in_sorted_order(tree: list[tuple[str, ...]]) -> None:
    with tempfile.TemporaryDirectory() as top:
        for parts in tree:
            os.makedirs(os.path.join(top, *parts[:-1]), exist_ok=True)
            touch(os.path.join(top, *parts))
        files, problems = walk(top)
        got = [f.path for f in files]
        assert got == sorted(encode_path(os.path.join(top, *parts))[0] for parts in tree)
        assert len(set(got)) == len(got)
        assert problems == []
        assert [f.raw is not None for f in files] == [BAD_CATALOG in f.path for f in files]


def test_walk_streams_one_directory_at_a_time(tmp_path: Path) -> None:
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
        touch(tmp_path / d / "f")
    listed: list[str] = []

    def recording_scandir(
        path: str,
    ) -> contextlib.AbstractContextManager[Iterator[os.DirEntry[str]]]:
        listed.append(os.path.basename(path))
        return os.scandir(path)

    it = list_files_recursively(str(tmp_path), scandir=recording_scandir)
    assert next(it).path == f"{tmp_path}/a/f"
    assert listed == [tmp_path.name, "a"]
    assert [f.path for f in it] == [f"{tmp_path}/b/f", f"{tmp_path}/c/f"]


def test_walk_deep_tree_has_no_recursion_limit(tmp_path: Path) -> None:
    depth = sys.getrecursionlimit() + 200
    # os.makedirs and shutil.rmtree recurse, and whole-path calls would be quadratic: go by fds.
    fd = os.open(tmp_path, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(old)
    os.close(os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    try:
        files, _ = walk(tmp_path)
        assert [f.path for f in files] == [str(tmp_path) + "/d" * depth + "/f"]
    finally:
        os.unlink("f", dir_fd=fd)
        for _ in range(depth):
            fd, old = os.open("..", os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
            os.rmdir("d", dir_fd=fd)
        os.close(fd)


def test_walk_paths_are_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    touch(tmp_path / "sub" / "f")
    monkeypatch.chdir(tmp_path)
    assert [f.path for f in walk("sub/")[0]] == [f"{tmp_path}/sub/f"]


def test_walk_top_missing_or_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_files_recursively(str(tmp_path / "gone"))
    touch(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        list_files_recursively(str(tmp_path / "file" / "below"))
    with pytest.raises(NotADirectoryError):
        list_files_recursively(str(tmp_path / "file"))


# --- the walk: ignore rules ----------------------------------------------------------------------


def test_ignore_prunes_directories_and_skips_files(tmp_path: Path) -> None:
    for rel in ("keep.txt", "x.tmp", "@eaDir/thumb.jpg", "sub/cache.tmp/deep/f", "sub/ok"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        touch(tmp_path / rel)
    listed: list[str] = []

    def recording_scandir(
        path: str,
    ) -> contextlib.AbstractContextManager[Iterator[os.DirEntry[str]]]:
        listed.append(path)
        return os.scandir(path)

    rules = IgnoreRules(["*.tmp", "@eaDir"])
    files, problems = walk(tmp_path, ignore=rules, scandir=recording_scandir)
    assert paths(files, tmp_path) == ["keep.txt", "sub/ok"]
    assert problems == []
    assert not any("cache.tmp" in p or "@eaDir" in p for p in listed)  # never descended


def test_ignore_applies_only_below_root(tmp_path: Path) -> None:
    root = tmp_path / "work.tmp" / "root"  # a component above the root matches "*.tmp"
    (root / "sub.tmp").mkdir(parents=True)
    (root / "sub").mkdir()
    touch(root / "sub" / "f")
    touch(root / "sub.tmp" / "f")
    rules = IgnoreRules(["*.tmp"])
    files, _ = walk(root, ignore=rules)
    assert paths(files, root) == ["sub/f"]
    files, _ = walk(root / "sub", root=str(root), ignore=rules)
    assert paths(files, root) == ["sub/f"]
    # top itself lies in an ignored directory relative to root: nothing to walk
    assert walk(root / "sub.tmp", root=str(root), ignore=rules) == ([], [])
    with pytest.raises(ValueError, match="not inside root"):
        list_files_recursively(str(tmp_path), root=str(root))


def test_ignore_sees_the_catalog_form_of_non_utf8_names(tmp_path: Path) -> None:
    top = os.fsencode(tmp_path)
    touch(top + b"/\xff.bin")
    touch(top + b"/ok.bin")
    files, _ = walk(tmp_path, ignore=IgnoreRules(["\\xff*"]))
    assert paths(files, tmp_path) == ["ok.bin"]


# --- the walk: odd names and odd files -----------------------------------------------------------


def test_non_utf8_names(tmp_path: Path) -> None:
    top = os.fsencode(tmp_path)
    os.mkdir(top + b"/d\xe9")
    touch(top + b"/d\xe9/f.bin", b"1")
    touch(top + b"/\xff\xfe.bin", b"22")
    touch(top + b"/caf\xc3\xa9", b"333")  # valid UTF-8: no raw
    files, problems = walk(tmp_path)
    assert paths(files, tmp_path) == [BAD_CATALOG, "caf\xe9", "d\\xe9/f.bin"]
    assert [f.raw for f in files] == [top + b"/\xff\xfe.bin", None, top + b"/d\xe9/f.bin"]
    assert [f.size for f in files] == [2, 3, 1]
    assert problems == []
    for f in files:
        assert f.path.encode("utf-8")  # valid text, storable as is


def test_ambiguous_catalog_names_keep_the_utf8_one(tmp_path: Path) -> None:
    top = os.fsencode(tmp_path)
    touch(top + b"/\xff", b"raw")
    touch(top + b"/\\xff", b"text")  # literally backslash, x, f, f
    files, problems = walk(tmp_path)
    assert [(f.path, f.size, f.raw) for f in files] == [(f"{tmp_path}/\\xff", 4, None)]
    assert problems == [(f"{tmp_path}/\\xff", "ambiguous-name")]


def test_names_with_newlines_and_spaces(tmp_path: Path) -> None:
    (tmp_path / "dir\nwith newline").mkdir()
    touch(tmp_path / "dir\nwith newline" / " lead and trail ")
    touch(tmp_path / "\n")
    files, _ = walk(tmp_path)
    assert paths(files, tmp_path) == ["\n", "dir\nwith newline/ lead and trail "]


def test_special_files_are_reported_and_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block the test
    (tmp_path / "to-fifo").symlink_to("fifo")
    touch(tmp_path / "f")
    sock = socket.socket(socket.AF_UNIX)
    sock_dir = tempfile.mkdtemp(dir="/tmp")  # tmp_path may exceed the 108-byte socket path limit
    try:
        sock.bind(os.path.join(sock_dir, "s"))
        files, problems = walk(sock_dir)
        assert (files, problems) == ([], [(os.path.join(sock_dir, "s"), "special")])
    finally:
        sock.close()
        shutil.rmtree(sock_dir)
    files, problems = walk(tmp_path)
    assert paths(files, tmp_path) == ["f"]
    assert sorted(problems) == [
        (f"{tmp_path}/fifo", "special"),
        (f"{tmp_path}/to-fifo", "special"),
    ]


def test_file_symlink_is_catalogued_with_its_target_figures(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    touch(tmp_path / "store" / "real.bin", b"0123456789")
    (tmp_path / "alias.bin").symlink_to("store/real.bin")
    files, problems = walk(tmp_path)
    assert paths(files, tmp_path) == ["alias.bin", "store/real.bin"]
    alias, real = files
    assert (alias.size, alias.mtime_ns, alias.device, alias.inode) == (
        real.size,
        real.mtime_ns,
        real.device,
        real.inode,
    )
    assert real.size == 10
    assert problems == []


def test_broken_symlinks_are_reported(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to("nowhere")
    (tmp_path / "self").symlink_to("self")
    touch(tmp_path / "f")
    files, problems = walk(tmp_path)
    assert paths(files, tmp_path) == ["f"]
    assert sorted(problems) == [
        (f"{tmp_path}/dangling", "broken-symlink"),
        (f"{tmp_path}/self", "broken-symlink"),
    ]


def make_linked_tree(tmp_path: Path) -> Path:
    top = tmp_path / "top"
    (top / "real").mkdir(parents=True)
    touch(top / "real" / "f")
    (top / "link").symlink_to("real")
    outside = tmp_path / "outside"
    outside.mkdir()
    touch(outside / "g")
    (top / "out").symlink_to(outside)
    return top


def test_directory_symlinks_are_skipped_by_default(tmp_path: Path) -> None:
    top = make_linked_tree(tmp_path)
    files, problems = walk(top)
    assert paths(files, top) == ["real/f"]
    assert sorted(problems) == [
        (f"{top}/link", "symlink-dir-skipped"),
        (f"{top}/out", "symlink-dir-skipped"),
    ]


def test_directory_symlinks_are_followed_on_request(tmp_path: Path) -> None:
    top = make_linked_tree(tmp_path)
    files, problems = walk(top, follow_symlinks=True)
    assert paths(files, top) == ["link/f", "out/g", "real/f"]
    assert problems == []


def test_a_directory_reached_through_two_links_is_walked_once(tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    touch(shared / "f")
    (top / "one").symlink_to(shared)
    (top / "two").symlink_to(shared)
    files, problems = walk(top, follow_symlinks=True)
    assert paths(files, top) == ["one/f"]
    assert problems == [(f"{top}/two", "duplicate-dir")]


def test_symlink_loops_are_reported_once_and_the_walk_ends(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    touch(tmp_path / "a" / "f")
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "a" / "here").symlink_to(".")
    touch(tmp_path / "z")
    files, problems = walk(tmp_path, follow_symlinks=True)
    assert paths(files, tmp_path) == ["a/f", "z"]
    assert sorted(problems) == [(f"{tmp_path}/a/here", "loop"), (f"{tmp_path}/a/up", "loop")]


# --- the walk: races, through the scandir seam ---------------------------------------------------


def listing_then(action: str, victim: Path) -> ScandirFn:
    """A scandir that lists a directory, then removes ``victim`` before the walker goes on."""

    def scandir(path: str) -> contextlib.AbstractContextManager[Iterator[os.DirEntry[str]]]:
        with os.scandir(path) as it:
            entries = list(it)
        if path == str(victim.parent) and victim.exists():
            if action == "unlink":
                victim.unlink()
            else:
                shutil.rmtree(victim)
        return contextlib.nullcontext(iter(entries))

    return scandir


def test_file_vanishing_between_listing_and_stat(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for name in ("a", "b", "c"):
        touch(tmp_path / "d" / name)
    files, problems = walk(tmp_path, scandir=listing_then("unlink", tmp_path / "d" / "b"))
    assert paths(files, tmp_path) == ["d/a", "d/c"]
    assert problems == [(f"{tmp_path}/d/b", "vanished")]


def test_directory_vanishing_between_listing_and_descent(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    touch(tmp_path / "d" / "sub" / "f")
    touch(tmp_path / "d" / "z")
    files, problems = walk(tmp_path, scandir=listing_then("rmtree", tmp_path / "d" / "sub"))
    assert paths(files, tmp_path) == ["d/z"]
    assert problems == [(f"{tmp_path}/d/sub", "vanished")]


# --- the walk: unreadable directories ------------------------------------------------------------

WALK_SCRIPT = """
import json, sys
from assetd.walk import list_files_recursively
out = {}
for top in sys.argv[1:]:
    problems = []
    files = [f.path for f in list_files_recursively(top, on_problem=problems.append)]
    out[top] = {"files": files, "problems": [[p.path, p.kind] for p in problems]}
print(json.dumps(out))
"""


def make_locked_tree(base: Path) -> Path:
    top = base / "top"
    for d in ("a", "locked", "listable", "z"):
        (top / d).mkdir(parents=True)
        touch(top / d / "f")
    os.chmod(top / "locked", 0)  # neither listable nor searchable
    os.chmod(top / "listable", 0o644)  # listable, but its entries cannot be stat'ed
    return top


def check_locked_walks(top: Path, result: dict[str, Any]) -> None:
    whole = result[str(top)]
    assert whole["files"] == [f"{top}/a/f", f"{top}/z/f"]
    assert sorted(map(tuple, whole["problems"])) == [
        (f"{top}/listable/f", "unreadable"),
        (f"{top}/locked", "unreadable"),
    ]
    locked = result[str(top / "locked")]
    assert locked == {"files": [], "problems": [[f"{top}/locked", "unreadable"]]}


def test_unreadable_directories_as_an_unprivileged_user() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is missing: cannot drop to an unprivileged user")
    if os.geteuid() != 0:
        pytest.skip("not root: test_unreadable_directories_directly covers this")
    drop = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable]
    env = {**os.environ, "PYTHONPATH": str(Path(assetd.__file__).parent.parent)}
    probe = subprocess.run([*drop, "-c", "import assetd.fsutil"], env=env, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this Python: {probe.stderr.decode()[-200:]}")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        top = make_locked_tree(base)
        run = subprocess.run(
            [*drop, "-c", WALK_SCRIPT, str(top), str(top / "locked")],
            env=env,
            capture_output=True,
            check=True,
        )
        check_locked_walks(top, json.loads(run.stdout))
    finally:
        shutil.rmtree(base)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads chmod-0 directories; see setpriv test")
def test_unreadable_directories_directly(tmp_path: Path) -> None:
    top = make_locked_tree(tmp_path)
    try:
        result: dict[str, Any] = {}
        for t in (top, top / "locked"):
            files, problems = walk(t)
            result[str(t)] = {
                "files": [f.path for f in files],
                "problems": list(map(list, problems)),
            }
        check_locked_walks(top, result)
    finally:
        os.chmod(top / "locked", 0o755)
        os.chmod(top / "listable", 0o755)


def test_filesystem_type_from_mountinfo(tmp_path: Path) -> None:
    from assetd.fsutil import filesystem_type, is_network_filesystem

    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 22 0:50 / /mnt/nas\\040share rw,relatime - nfs4 srv:/x rw\n"
        "41 22 0:51 / /mnt/ssh rw shared:1 - fuse.sshfs host: rw\n"
    )
    assert filesystem_type("/mnt/nas share/models/a", str(info)) == "nfs4"
    assert filesystem_type("/mnt/ssh", str(info)) == "fuse.sshfs"
    assert filesystem_type("/mnt/nas", str(info)) == "ext4"
    assert [is_network_filesystem(t) for t in ("nfs4", "fuse.sshfs", "ext4", None)] == [
        True,
        True,
        False,
        False,
    ]
    assert filesystem_type(str(tmp_path)) is not None  # the real /proc/self/mountinfo
