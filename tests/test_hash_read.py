"""Reading one small file for the hasher (``read_digest``): checked on its open descriptor, with
real files. A file replaced, unlinked or swapped for something else while it is read is never
given the digest of what was read; a symlink is read at its target only as the rules say."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import blake3
import pytest

from assetd.catalog.content import HashJob, Outcome
from assetd.catalog.roots import RootSpec
from assetd.hashing.digest import LARGE_FILE, read_digest, reader_for


def b3(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


def job_for(path: Path, root_id: int = 1) -> HashJob:
    st = os.stat(path)
    return HashJob(1, root_id, str(path), str(path), st.st_size, st.st_mtime_ns)


def root_at(path: Path, *, follow: bool = False) -> RootSpec:
    return RootSpec(id=1, name="lib", path=str(path), tags=(), follow_symlinks=follow)


def test_a_small_file_reads_to_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"a" * 4096)
    assert read_digest(job_for(path)) == (b3(b"a" * 4096), "")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert read_digest(job_for(empty)) == (b3(b""), "")


def test_a_file_replaced_mid_read_by_one_of_the_same_size_and_mtime_is_not_recorded(
    tmp_path: Path,
) -> None:
    """``mv new path`` while the hasher reads: the path's size and mtime are those the job
    has, but what was read is the file that left (the path-based recheck recorded it)."""
    path = tmp_path / "a.bin"
    path.write_bytes(b"old content " * 100)
    job = job_for(path)
    new = tmp_path / ".a.bin.tmp"

    def replace(_read: int) -> None:
        new.write_bytes(b"new content " * 100)
        os.utime(new, ns=(job.mtime_ns, job.mtime_ns))
        os.replace(new, path)

    assert read_digest(job, hook=replace) == (None, Outcome.CHANGED)
    assert read_digest(job_for(path)) == (b3(b"new content " * 100), "")


def test_a_file_unlinked_mid_read_is_vanished(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"soon gone")
    assert read_digest(job_for(path), hook=lambda _: path.unlink()) == (None, Outcome.VANISHED)


def test_a_file_grown_or_rewritten_mid_read_is_changed(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 100)
    job = job_for(path)

    def grow(_read: int) -> None:
        with open(path, "ab") as f:
            f.write(b"more")

    assert read_digest(job, hook=grow) == (None, Outcome.CHANGED)
    path.write_bytes(b"y" * 100)
    os.utime(path, ns=(job.mtime_ns + 10**9, job.mtime_ns + 10**9))
    assert read_digest(job) == (None, Outcome.CHANGED)  # before the read: the mtime differs


def test_a_fifo_at_the_path_is_changed_and_the_open_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 10)
    job = job_for(path)
    path.unlink()
    os.mkfifo(path)  # nobody writes to it: a blocking open would wait for ever
    out: list[tuple[str | None, str]] = []
    thread = threading.Thread(target=lambda: out.append(read_digest(job)), daemon=True)
    thread.start()
    thread.join(10)
    assert out == [(None, Outcome.CHANGED)]


def test_a_directory_or_nothing_at_the_path(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"x" * 10)
    job = job_for(path)
    path.unlink()
    assert read_digest(job) == (None, Outcome.VANISHED)
    path.mkdir()
    assert read_digest(job) == (None, Outcome.CHANGED)


@pytest.mark.parametrize("size", [10, LARGE_FILE], ids=["small", "large"])
def test_a_link_is_read_at_its_target_only_as_the_rules_say(tmp_path: Path, size: int) -> None:
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    lib.mkdir()
    outside.mkdir()
    (lib / "target.bin").write_bytes(b"t" * size)
    (outside / "secret.bin").write_bytes(b"s" * size)
    (lib / "inside").symlink_to(lib / "target.bin")
    (lib / "out").symlink_to(outside / "secret.bin")
    inside, out = job_for(lib / "inside"), job_for(lib / "out")
    readable = reader_for([root_at(lib)])
    assert read_digest(inside, readable=readable) == (b3(b"t" * size), "")
    assert read_digest(out, readable=readable) == (None, Outcome.CHANGED)
    assert read_digest(inside) == (None, Outcome.CHANGED)  # default: never through a link
    follow = reader_for([root_at(lib, follow=True)])
    assert read_digest(out, readable=follow) == (b3(b"s" * size), "")
