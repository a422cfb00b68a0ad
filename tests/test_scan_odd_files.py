"""``assetd scan`` on odd files (DESIGN §3, §6): non-UTF-8 names, newlines, symlink loops, FIFOs,
file symlinks, unreadable directories, files vanishing mid-scan, ignored paths. Each is logged and
skipped or catalogued; the walk goes on and ``scan`` exits 0 with the skipped count in its summary.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assetd.catalog_access import catalog
from assetd.config import load_config
from assetd.fsutil import FileStat
from assetd.reconcile import sync_cache_states_with_filesystem
from assetd.walk import list_files_recursively
from cli_world import Cli, catalog_rows, isolate, sqlite_url, tree, write_config
from unprivileged import give_to_nobody, nobody


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def scan(cli: Cli, config: Path) -> dict[str, object]:
    """``assetd scan --json``: it exits 0 and prints one JSON summary."""
    run = cli("scan", "--json", "--config", config)
    assert run.code == 0, run.err
    [line] = run.lines
    result: dict[str, object] = json.loads(line)
    return result


def counts(result: dict[str, object]) -> tuple[object, ...]:
    """(new, missing, restored, changed, skipped)."""
    return tuple(result[k] for k in ("new", "missing", "restored", "changed", "skipped"))


def touch_bytes(path: bytes, data: bytes = b"") -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# --- non-UTF-8 names, on both engines -----------------------------------------------------


def test_non_utf8_name_catalogued_missing_and_restored(
    cli: Cli, tmp_path: Path, state: Path, db_url: str
) -> None:
    lib = tree(tmp_path / "lib", {"plain.bin": b"p"})
    raw_file = os.fsencode(lib) + b"/caf\xff.bin"
    raw_dir = os.fsencode(lib) + b"/d\xfe"
    os.mkdir(raw_dir)
    touch_bytes(raw_file, b"12345")
    touch_bytes(raw_dir + b"/in.bin", b"abc")
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url)

    assert counts(scan(cli, config)) == (3, 0, 0, 0, 0)
    text_file = f"{lib}/caf\\xff.bin"  # each undecodable byte as the four characters \xNN
    text_in_dir = f"{lib}/d\\xfe/in.bin"
    rows = catalog_rows(db_url)
    assert sorted(rows) == sorted([f"{lib}/plain.bin", text_file, text_in_dir])
    assert rows[text_file]["file_path_raw"] == raw_file
    assert rows[text_file]["size_bytes"] == 5
    assert rows[text_in_dir]["file_path_raw"] == raw_dir + b"/in.bin"
    assert rows[f"{lib}/plain.bin"]["file_path_raw"] is None
    assert cli("ls", "--config", config).lines == [text_file, text_in_dir, f"{lib}/plain.bin"]
    # `ls DIR` with the directory's real (non-UTF-8) name
    assert cli("ls", "--config", config, os.fsdecode(raw_dir)).lines == [text_in_dir]
    assert scan(cli, config)["unchanged"] == 3

    away = os.fsencode(tmp_path) + b"/away"
    os.rename(raw_file, away)
    assert counts(scan(cli, config)) == (0, 1, 0, 0, 0)
    row = catalog_rows(db_url)[text_file]
    assert row["is_missing"] is True and row["state_reason"] == "reconcile"
    assert cli("ls", "--missing", "--config", config).lines == [text_file]

    os.rename(away, raw_file)
    assert counts(scan(cli, config)) == (0, 0, 1, 0, 0)
    row = catalog_rows(db_url)[text_file]
    assert (row["is_missing"], row["file_path_raw"]) == (False, raw_file)


# --- names with a newline, symlinks, FIFOs ----------------------------------------------------


def test_name_with_a_newline(cli: Cli, tmp_path: Path, state: Path, db_url: str) -> None:
    lib = tree(tmp_path / "lib", {"new\nline.bin": b"nl", "dir\nname/f.bin": b"f"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url)
    assert counts(scan(cli, config)) == (2, 0, 0, 0, 0)
    paths = [r["path"] for r in cli("ls", "--json", "--config", config).json_lines()]
    assert paths == [f"{lib}/dir\nname/f.bin", f"{lib}/new\nline.bin"]
    assert catalog_rows(db_url)[f"{lib}/new\nline.bin"]["file_path_raw"] is None
    os.unlink(lib / "new\nline.bin")
    assert counts(scan(cli, config)) == (0, 1, 0, 0, 0)
    assert [r["path"] for r in cli("ls", "--json", "--config", config).json_lines()] == [
        f"{lib}/dir\nname/f.bin"
    ]


def test_symlink_loops_with_follow_symlinks(
    cli: Cli, tmp_path: Path, state: Path, db_url: str
) -> None:
    lib = tree(tmp_path / "lib", {"d/f.bin": b"f", "g.bin": b"g"})
    os.symlink("..", lib / "d" / "up")  # d/up -> lib, an ancestor
    os.symlink(".", lib / "self")  # lib/self -> lib
    config = write_config(
        tmp_path / "c.toml",
        roots={"lib": lib},
        state_dir=state,
        url=db_url,
        root_extra="follow_symlinks = true",
    )
    result = scan(cli, config)
    assert counts(result) == (2, 0, 0, 0, 2)
    assert result["skipped_by_kind"] == {"loop": 2}
    assert sorted(catalog_rows(db_url)) == [f"{lib}/d/f.bin", f"{lib}/g.bin"]
    assert counts(scan(cli, config)) == (0, 0, 0, 0, 2)  # and again: nothing changes


def test_fifo_is_skipped_and_counted_in_the_summary(
    cli: Cli, tmp_path: Path, state: Path, db_url: str
) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    os.mkfifo(lib / "pipe")
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url)
    run = cli("scan", "--config", config)  # the human summary: never opens the FIFO, exits 0
    assert run.code == 0, run.err
    assert run.lines[0].endswith(" 1 new, 0 missing, 0 restored, 0 changed, 0 unchanged, 1 skipped")
    assert run.lines[1:] == [f"  skipped special: {lib}/pipe (FIFO, socket or device)"]
    assert sorted(catalog_rows(db_url)) == [f"{lib}/a.bin"]
    assert scan(cli, config)["skipped_by_kind"] == {"special": 1}


def test_symlinks_to_files_and_directories(
    cli: Cli, tmp_path: Path, state: Path, db_url: str
) -> None:
    outside = tree(tmp_path / "outside", {"target.bin": b"t" * 1234, "sub/s.bin": b"s"})
    lib = tree(tmp_path / "lib", {"real.bin": b"r" * 7})
    os.symlink(outside / "target.bin", lib / "link.bin")  # to a file outside the root
    os.symlink("real.bin", lib / "alias.bin")  # to a file inside it
    os.symlink(outside / "sub", lib / "dirlink")  # a directory: not followed by default
    os.symlink(tmp_path / "nothing", lib / "dangling")
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url)
    result = scan(cli, config)
    assert counts(result) == (3, 0, 0, 0, 2)
    assert result["skipped_by_kind"] == {"symlink-dir-skipped": 1, "broken-symlink": 1}
    rows = catalog_rows(db_url)
    assert sorted(rows) == [f"{lib}/alias.bin", f"{lib}/link.bin", f"{lib}/real.bin"]
    own = os.lstat(lib / "link.bin")
    link = rows[f"{lib}/link.bin"]  # to outside every root: a link, at its own figures (§5)
    assert (link["size_bytes"], link["mtime_ns"]) == (own.st_size, own.st_mtime_ns)
    assert link["is_symlink"] is True
    assert rows[f"{lib}/alias.bin"]["size_bytes"] == 7  # inside: its target's figures

    os.unlink(outside / "target.bin")  # the link is now dangling: its file is missing
    result = scan(cli, config)
    assert counts(result) == (0, 1, 0, 0, 3)
    assert catalog_rows(db_url)[f"{lib}/link.bin"]["is_missing"] is True


# --- unreadable directories (as nobody) -----------------------------------------------------


def test_unreadable_directories_are_skipped_and_their_files_not_marked_missing(
    cli: Cli,
) -> None:
    with nobody() as nb:
        lib = tree(
            nb.base / "lib",
            {
                "a/f.bin": b"f",
                "locked/g.bin": b"g",
                "locked/deep/h.bin": b"h",
                "half/i.bin": b"i",
                "half/sub/j.bin": b"j",
                "blind/m.bin": b"m",
                "z/k.bin": b"k",
            },
        )
        state = nb.base / "state"
        config = write_config(nb.base / "c.toml", roots={"lib": lib}, state_dir=state, host="h")
        assert counts(scan(cli, config)) == (7, 0, 0, 0, 0)  # as root, all readable
        before = catalog_rows(sqlite_url(state))
        give_to_nobody(state)  # nobody may write the catalog, not read everything
        (lib / "z" / "new.bin").write_bytes(b"n")  # beyond the unreadable ones: still seen
        os.chmod(lib / "locked", 0)  # neither listable nor searchable
        os.chmod(lib / "half", 0o644)  # listable, but nothing in it can be stat'ed
        os.chmod(lib / "blind", 0o311)  # searchable (its files can be stat'ed), not listable
        try:
            proc = nb.assetd("scan", "--json", "--config", str(config))
        finally:
            os.chmod(lib / "locked", 0o755)
            os.chmod(lib / "half", 0o755)
            os.chmod(lib / "blind", 0o755)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert counts(result) == (1, 0, 0, 0, 4)
        # blind, half/i.bin, half/sub, locked
        assert result["skipped_by_kind"] == {"unreadable": 4}
        after = catalog_rows(sqlite_url(state))
        assert set(after) == {*before, f"{lib}/z/new.bin"}
        for path, row in before.items():  # untouched: unknown is not missing
            assert after[path] == row, path


# --- files vanishing between listing and stat ----------------------------------------------


def test_file_vanishing_before_the_recheck_is_not_catalogued(
    tmp_path: Path, state: Path, db_url: str
) -> None:
    """Through the ``stat`` seam: listed by the walk, gone when re-checked before the write."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "gone.bin": b"g", "z.bin": b"z"})
    config = load_config(
        str(write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url))
    )
    victim = str(lib / "gone.bin")

    def stat(path: str) -> os.stat_result:
        if path == victim and os.path.exists(victim):
            os.unlink(victim)
        return os.stat(path)

    with catalog(config, write=True) as cat:
        specs = cat.register_roots()
        with cat.session() as session:
            result = sync_cache_states_with_filesystem(session, specs, stat=stat)
    assert (result.new, result.missing, result.skipped) == (2, 0, 0)
    assert sorted(catalog_rows(config.database_url)) == [f"{lib}/a.bin", f"{lib}/z.bin"]


def test_file_vanishing_between_listing_and_stat(
    cli: Cli, tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    """Through a scandir wrapper: the directory is listed, then the file goes before the walk
    stats it. It is simply not catalogued, and the scan exits 0."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "gone.bin": b"g", "z.bin": b"z"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state, url=db_url)

    @contextlib.contextmanager
    def scandir(path: str) -> Iterator[Iterator[os.DirEntry[str]]]:
        with os.scandir(path) as it:
            entries = list(it)
        if path == str(lib):
            os.unlink(lib / "gone.bin")
        yield iter(entries)

    def walk(*args: Any, **kwargs: Any) -> Iterator[FileStat]:
        return list_files_recursively(*args, **{**kwargs, "scandir": scandir})  # over the seam

    monkeypatch.setattr("assetd.reconcile.list_files_recursively", walk)
    result = scan(cli, config)
    assert counts(result) == (2, 0, 0, 0, 1)
    assert result["skipped_by_kind"] == {"vanished": 1}
    assert sorted(catalog_rows(db_url)) == [f"{lib}/a.bin", f"{lib}/z.bin"]


# --- ignored paths ------------------------------------------------------------------------


def test_ignored_files_are_not_catalogued_and_their_rows_never_touched(
    cli: Cli, tmp_path: Path, state: Path, db_url: str
) -> None:
    lib = tree(
        tmp_path / "lib",
        {"keep.bin": b"k", "x.tmp": b"x", "cache.tmp/y.bin": b"y", "d/z.part": b"z"},
    )
    unignored = write_config(
        tmp_path / "none.toml",
        roots={"lib": lib},
        state_dir=state,
        url=db_url,
        extra="[watch]\nignore = []\n",
    )
    default = write_config(
        tmp_path / "default.toml", roots={"lib": lib}, state_dir=state, url=db_url
    )
    url = db_url

    assert counts(scan(cli, default)) == (1, 0, 0, 0, 0)  # *.tmp and *.part: not catalogued
    assert sorted(catalog_rows(url)) == [f"{lib}/keep.bin"]

    assert counts(scan(cli, unignored)) == (3, 0, 0, 0, 0)  # now they are
    before = catalog_rows(url)
    os.unlink(lib / "x.tmp")  # gone
    (lib / "cache.tmp" / "y.bin").write_bytes(b"changed")  # changed
    (lib / "new.tmp").write_bytes(b"n")  # new
    result = scan(cli, default)
    assert counts(result) == (0, 0, 0, 0, 0)
    assert result["unchanged"] == 1
    assert catalog_rows(url) == before  # rows under ignored paths: never touched
