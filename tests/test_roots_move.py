"""``assetd roots move NAME NEW_PATH``: a library copied to a new disk keeps its catalog (rows,
assets, hashes, infos, manual and automatic tags), with no reseed and no rehash; a directory
that does not hold the same files is refused, naming the first difference; so is a move while
this host's daemon holds its lock."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from assetd.hostlock import CatalogFileLock, HostLock
from cli_world import Cli, Run, isolate, tree, write_config

ODD = os.fsdecode(b"caf\xe9.bin")  # a non-UTF-8 name: file_path_raw is rewritten too


@dataclass
class Lib:
    cli: Cli
    tmp: Path
    old: Path
    config: Path
    state: Path

    def run(self, *argv: str | Path) -> Run:
        return self.cli(*argv, "--config", self.config)

    def rows(self) -> dict[str, tuple[object, ...]]:
        """file_path -> (is_missing, asset_id, hash, file_path_raw, state_reason)."""
        conn = sqlite3.connect(self.state / "catalog.db")
        try:
            return {
                str(r[0]): r[1:]
                for r in conn.execute(
                    "SELECT c.file_path, c.is_missing, c.asset_id, a.hash, c.file_path_raw, "
                    "c.state_reason FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id"
                )
            }
        finally:
            conn.close()

    def tags(self) -> set[tuple[str, str, str]]:
        conn = sqlite3.connect(self.state / "catalog.db")
        try:
            return set(
                conn.execute(
                    "SELECT c.file_path, t.tag_name, t.origin FROM asset_info_tags t "
                    "JOIN asset_infos i ON i.id = t.asset_info_id "
                    "JOIN asset_cache_states c ON c.asset_id = i.asset_id"
                )
            )
        finally:
            conn.close()

    def copy_to(self, name: str) -> Path:
        new = self.tmp / name
        shutil.copytree(self.old, new, copy_function=shutil.copy2)  # keeps mtimes
        return new


@pytest.fixture
def lib(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Lib:
    isolate(monkeypatch, tmp_path)
    old = tree(
        tmp_path / "disk1/models",
        {"a.bin": b"a" * 10, "sd/b.bin": b"b" * 20, "sd/c.bin": b"c" * 30, "gone.bin": b"g"},
    )
    (old / ODD).write_bytes(b"odd")
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "c.toml",
        roots={"models": old},
        state_dir=state,
        host="h",
        root_extra='tags = ["models"]',
    )
    w = Lib(Cli(capsys), tmp_path, old, config, state)
    for argv in (("scan",), ("hash",)):
        assert w.run(*argv).code == 0
    (old / "gone.bin").unlink()
    assert w.run("scan").code == 0
    conn = sqlite3.connect(state / "catalog.db")
    with conn:
        conn.execute("INSERT INTO tags (name) VALUES ('keep')")
        conn.execute(
            "INSERT INTO asset_info_tags (asset_info_id, tag_name) SELECT i.id, 'keep' FROM "
            "asset_infos i JOIN asset_cache_states c ON c.asset_id = i.asset_id "
            "WHERE c.file_path = ?",
            (str(old / "sd/b.bin"),),
        )
    conn.close()
    return w


def test_move_keeps_rows_hashes_and_tags_without_reseed(lib: Lib) -> None:
    before_rows, before_tags = lib.rows(), lib.tags()
    new = lib.copy_to("disk2/models")
    run = lib.run("roots", "move", "models", new)
    assert run.code == 0, run.err
    assert run.lines[0] == (
        f"moved root models: {lib.old} -> {new}, 5 path(s) rewritten (4 live, 1 missing), "
        "4 hash(es) checked"
    )
    number = lib.config.read_text().splitlines().index(f'path = "{lib.old}"') + 1
    assert run.lines[1] == f"now set the root's path in {lib.config}, line {number}:"
    assert run.lines[2] == f'    path = "{new}"'
    assert run.lines[3] == f'  (it reads: path = "{lib.old}")'

    rebase = {p: p.replace(str(lib.old), str(new), 1) for p in before_rows}
    after = lib.rows()
    assert set(after) == set(rebase.values())
    for old_path, row in before_rows.items():
        moved = after[rebase[old_path]]
        assert moved[:3] == row[:3]  # is_missing, asset_id, hash
        assert moved[4] == row[4]  # state_reason kept (the missing one says why)
    raw = after[str(new / "caf\\xe9.bin")][3]
    assert raw == os.fsencode(str(new)) + b"/caf\xe9.bin"
    assert lib.tags() == {(rebase[p], t, o) for p, t, o in before_tags}
    assert (rebase[str(lib.old / "sd/b.bin")], "keep", "manual") in lib.tags()

    # the daemon (or a scan) with the new path in its config finds nothing to do
    moved_config = write_config(
        lib.tmp / "c2.toml",
        roots={"models": new},
        state_dir=lib.state,
        host="h",
        root_extra='tags = ["models"]',
    )
    scan = lib.cli("scan", "--json", "--config", moved_config)
    assert scan.code == 0, scan.err
    summary = scan.json_lines()[0]
    assert (summary["new"], summary["missing"], summary["changed"]) == (0, 0, 0)
    assert lib.cli("hash", "--dry-run", "--config", moved_config).lines == [
        "hashing backlog: 0 file(s), 0 B (0 bytes)"
    ]
    assert lib.rows() == after
    assert lib.cli("status", "--json", "--config", moved_config).code == 0


CHANGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "extra file": (
        lambda new: (new / "extra.bin").write_bytes(b"x"),
        "only in the new directory: extra.bin",
    ),
    "missing file": (
        lambda new: (new / "sd/c.bin").unlink(),
        "only in the catalog (not in the new directory): sd/c.bin",
    ),
    "other size": (
        lambda new: (new / "a.bin").write_bytes(b"a" * 11),
        "size differs: a.bin (catalog 10 bytes, new directory 11)",
    ),
    "other content": (  # same size and mtime: only the hash sample tells
        lambda new: _same_stat_other_bytes(new / "sd/b.bin"),
        "content differs: sd/b.bin (catalog blake3:",
    ),
}


def _same_stat_other_bytes(path: Path) -> None:
    st = path.stat()
    path.write_bytes(b"X" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_move_refuses_a_different_tree(lib: Lib, case: str) -> None:
    change, difference = CHANGES[case]
    before = lib.rows()
    new = lib.copy_to("disk2/models")
    change(new)
    run = lib.run("roots", "move", "models", new)
    assert run.code == 1
    assert run.out == ""
    [message] = run.messages
    assert message.startswith(
        f"assetd: refusing to move root 'models': {new} does not hold the same files"
    )
    assert difference in message
    assert lib.rows() == before


def test_a_missing_file_back_in_the_new_directory_is_fine(lib: Lib) -> None:
    new = lib.copy_to("disk2/models")
    (new / "gone.bin").write_bytes(b"g")  # the missing row's file: restored by the next scan
    assert lib.run("roots", "move", "models", new).code == 0


def test_move_refuses_while_the_daemon_holds_the_host_lock(lib: Lib) -> None:
    new = lib.copy_to("disk2/models")
    lock = HostLock(str(lib.state))
    lock.acquire()
    try:
        run = lib.run("roots", "move", "models", new)
        assert run.code == 75
        assert "already runs" in run.err and "--force" in run.err
        forced = lib.run("roots", "move", "models", new, "--force")
        assert forced.code == 0, forced.err
    finally:
        lock.release()


def test_move_refuses_while_a_daemon_holds_the_catalog_lock(lib: Lib) -> None:
    """A daemon with another state directory on the same SQLite catalog (issue 12)."""
    new = lib.copy_to("disk2/models")
    lock = CatalogFileLock(str(lib.state / "catalog.db"))
    lock.acquire()
    try:
        run = lib.run("roots", "move", "models", new)
        assert run.code == 75
        assert "already uses the catalog" in run.err and "--force" in run.err
    finally:
        lock.release()
    assert lib.run("roots", "move", "models", new).code == 0


def test_move_checks_the_new_path(lib: Lib) -> None:
    other = tree(lib.tmp / "outer/other", {"o.bin": b"o", "x/y.bin": b"y"})
    config = write_config(
        lib.tmp / "c3.toml",
        roots={"models": lib.old, "other": other},
        state_dir=lib.state,
        host="h",
    )
    cases = [
        (lib.tmp / "nowhere", 1, "does not exist"),
        (lib.old / "a.bin", 1, "is not a directory"),
        (lib.old, 2, "the root is at"),
        (lib.old / "sd", 2, "must not contain each other"),
        (other, 2, "would nest"),
        (other / "x", 2, "would nest"),
        (other.parent, 2, "would nest"),  # it holds the other root
        (lib.tmp, 2, "must not contain each other"),
    ]
    for path, code, text in cases:
        run = lib.cli("roots", "move", "models", path, "--config", config)
        assert (run.code, text in run.err) == (code, True), (path, run.err)
    unknown = lib.run("roots", "move", "nope", lib.tmp)
    assert unknown.code == 2 and "no root named 'nope'" in unknown.err


def test_a_root_given_with_root_gets_root_advice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    isolate(monkeypatch, tmp_path)
    cli = Cli(capsys)
    old = tree(tmp_path / "a/lib", {"f.bin": b"f"})
    assert cli("scan", "--root", old).code == 0
    new = tmp_path / "b/library"
    shutil.copytree(old, new, copy_function=shutil.copy2)
    run = cli("roots", "move", "lib", new, "--root", old)
    assert run.code == 0, run.err
    assert f"now pass --root {new} instead of --root {old}; its name would then be " in run.out
    assert "'library', not 'lib'" in run.out
    catalog = tmp_path / "xdg/assetd/catalog.db"
    conn = sqlite3.connect(catalog)
    try:
        paths = [r[0] for r in conn.execute("SELECT file_path FROM asset_cache_states")]
        roots = list(conn.execute("SELECT name, path FROM roots"))
    finally:
        conn.close()
    assert paths == [str(new / "f.bin")]
    assert roots == [("lib", str(new))]


def test_retire_needs_the_root_gone_from_the_config_and_keeps_metadata(lib: Lib) -> None:
    assert lib.run("roots", "retire", "models", "--yes").code == 2  # still configured
    before_assets = (
        sqlite3.connect(lib.state / "catalog.db")
        .execute("SELECT count(*) FROM assets")
        .fetchone()[0]
    )
    config = write_config(lib.tmp / "empty.toml", roots={}, state_dir=lib.state, host="h")
    run = lib.cli("roots", "retire", "models", "--config", config)
    assert run.code == 2, "no TTY and no --yes: refused"
    assert lib.rows(), "nothing removed"
    run = lib.cli("roots", "retire", "models", "--yes", "--config", config)
    assert run.code == 0, run.err
    assert "5 path row(s) removed" in run.lines[0]
    assert lib.rows() == {}
    conn = sqlite3.connect(lib.state / "catalog.db")
    try:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == before_assets
        keep = "SELECT count(*) FROM asset_info_tags WHERE tag_name = 'keep'"
        assert conn.execute(keep).fetchone()[0] == 1  # the manual tag survives
        assert conn.execute("SELECT count(*) FROM roots").fetchone()[0] == 0
    finally:
        conn.close()
    assert lib.cli("roots", "retire", "models", "--yes", "--config", config).code == 2
