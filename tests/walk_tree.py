"""A small tree with every kind of entry a walk must get right, for the read-ahead tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from assetd.fsutil import FileStat, IgnoreRules
from assetd.walk import WalkProblem, list_files_recursively


def make_odd_tree(top: Path, *, per_dir: int = 3, fifo: bool = False) -> None:
    """Files at several depths, names that sort around ``/`` (``a``, ``a-``, ``a.b``), an
    ignored ``*.tmp``, 12 directories of ``per_dir`` files, symlinks in, out, broken and to a
    directory, a name that is not UTF-8, and a FIFO when ``fifo``."""
    for rel in (
        "a",
        "a.b",
        "a-",
        "b/x",
        "b/sub/y",
        "b/sub/deeper/z",
        "b.txt",
        "c/junk.tmp",
        "c/keep",
        *(f"many/d{i:02d}/f{j}" for i in range(12) for j in range(per_dir)),
    ):
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(rel.encode())
    os.symlink(top / "b.txt", top / "link-in")
    os.symlink("/etc/hostname", top / "link-out")
    os.symlink(top / "nowhere", top / "broken")
    os.symlink(top / "b", top / "dirlink")
    if fifo:
        os.mkfifo(top / "fifo")
    (top / os.fsdecode(b"bad\xff")).write_bytes(b"x")


def walk_odd_tree(
    top: Path, follow: bool, **options: Any
) -> tuple[list[FileStat], list[WalkProblem]]:
    """``list_files_recursively`` of ``top`` as the read-ahead tests walk it (``*.tmp``
    ignored), with ``options`` passed on: the files and the problems reported."""
    problems: list[WalkProblem] = []
    files = list(
        list_files_recursively(
            str(top),
            ignore=IgnoreRules(["*.tmp"]),
            follow_symlinks=follow,
            on_problem=problems.append,
            **options,
        )
    )
    return files, problems
