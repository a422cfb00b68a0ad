"""A first scan lists files without a stat each and reads each file's figures once, by one
``statx`` inside the transaction that writes its row (issue 15): what it catalogues is what
``os.lstat`` and the birth time say, a file gone before it is read is reported ``vanished`` and
not catalogued, and a later scan (rows under the root) stats in the walk as before. Both engines.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assetd import statx
from assetd.catalog_access import catalog
from assetd.config import load_config
from assetd.reconcile import sync_cache_states_with_filesystem
from assetd.walk import list_files_recursively
from assetd.walk_dir import NO_FIGURES
from cli_world import catalog_rows, tree, write_config

# --------------------------------------------------------------------------- statx figures


def test_lstat_birth_gives_what_lstat_gives(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"12345")
    os.utime(tmp_path / "f", ns=(1_000_000_007, 1_700_000_000_123_456_789))
    (tmp_path / "d").mkdir()
    os.symlink("f", tmp_path / "link")
    for name in ("f", "d", "link"):
        path = str(tmp_path / name)
        st = os.lstat(path)
        mode, size, mtime_ns, device, inode, birth = statx.lstat_birth(path)
        assert (mode, size, mtime_ns, device, inode) == (
            st.st_mode,
            st.st_size,
            st.st_mtime_ns,
            st.st_dev,
            st.st_ino,
        ), name
        assert birth == statx.birth_ns(path, follow=False), name


def test_lstat_birth_raises_as_lstat_does(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        statx.lstat_birth(str(tmp_path / "nothing"))
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        statx.lstat_birth(str(tmp_path / "f" / "below"))


# --------------------------------------------------------------------------- the walk


def test_a_walk_without_figures_lists_the_same_files(tmp_path: Path) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "d/b.bin": b"bb", "d/e/c.bin": b"c", "z": b""})
    os.symlink(lib / "a.bin", lib / "d" / "to-a")
    with_figures = list(list_files_recursively(str(lib), runs=True))
    listed = list(list_files_recursively(str(lib), runs=True, figures=False))
    rows = [r for run in with_figures for r in run]
    bare = [r for run in listed for r in run]
    assert [r[0] for r in bare] == [r[0] for r in rows]
    assert all((r[1], r[2], r[4], r[5]) == NO_FIGURES for r in bare)
    assert [(r[6], r[7]) for r in bare] == [(r[6], r[7]) for r in rows]


# --------------------------------------------------------------------------- the first scan


def _scan(tmp_path: Path, lib: Path, db_url: str) -> dict[str, object]:
    config = load_config(
        str(
            write_config(
                tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "state", url=db_url
            )
        )
    )
    with catalog(config, write=True) as cat:
        specs = cat.register_roots()
        with cat.session() as session:
            result = sync_cache_states_with_filesystem(session, specs)
    return result.as_dict()


def test_a_first_scan_records_what_lstat_and_statx_say(tmp_path: Path, db_url: str) -> None:
    lib = tree(tmp_path / "lib", {f"d{i % 3}/f{i:03d}.bin": b"x" * i for i in range(60)})
    os.symlink(lib / "d0" / "f000.bin", lib / "inside-link")  # a link in the root: its target's
    result = _scan(tmp_path, lib, db_url)
    assert (result["new"], result["skipped"]) == (61, 0)
    rows = catalog_rows(db_url)
    assert len(rows) == 61
    for path, row in rows.items():
        st = os.stat(path)  # a link inside the root takes its target's figures
        assert (row["size_bytes"], row["mtime_ns"], row["device"], row["inode"]) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_dev,
            st.st_ino,
        ), path
        assert row["birth_ns"] == statx.birth_ns(path), path
        assert not row["is_symlink"]


def test_a_file_gone_before_the_first_scan_reads_it_is_vanished(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed by the walk (no stat), gone when the applier reads its figures: not catalogued,
    and reported as the walk's own stat would have reported it."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "gone.bin": b"g", "z.bin": b"z"})
    victim = str(lib / "gone.bin")
    real = statx.lstat_birth

    def lstat_birth(path: str) -> statx.Figures:
        if path == victim and os.path.exists(victim):
            os.unlink(victim)
        return real(path)

    monkeypatch.setattr("assetd.reconcile_apply.lstat_birth", lstat_birth)
    result = _scan(tmp_path, lib, db_url)
    assert (result["new"], result["missing"], result["skipped"]) == (2, 0, 1)
    assert result["skipped_by_kind"] == {"vanished": 1}
    assert sorted(catalog_rows(db_url)) == [f"{lib}/a.bin", f"{lib}/z.bin"]


def test_a_file_turned_directory_before_the_first_scan_reads_it_is_vanished(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "turn": b"t"})
    victim = str(lib / "turn")
    real = statx.lstat_birth

    def lstat_birth(path: str) -> statx.Figures:
        if path == victim and os.path.isfile(victim):
            os.unlink(victim)
            os.mkdir(victim)
        return real(path)

    monkeypatch.setattr("assetd.reconcile_apply.lstat_birth", lstat_birth)
    result = _scan(tmp_path, lib, db_url)
    assert (result["new"], result["skipped"]) == (1, 1)
    assert result["skipped_by_kind"] == {"vanished": 1}
    assert sorted(catalog_rows(db_url)) == [f"{lib}/a.bin"]


def test_a_later_scan_stats_in_the_walk(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With rows under the root, the walk stats each file (an unchanged file is never read
    again by the applier)."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a", "b.bin": b"b"})
    assert _scan(tmp_path, lib, db_url)["new"] == 2

    def refuse(path: str) -> statx.Figures:
        raise AssertionError(f"re-read {path}")

    monkeypatch.setattr("assetd.reconcile_apply.lstat_birth", refuse)
    result = _scan(tmp_path, lib, db_url)
    assert (result["new"], result["unchanged"], result["skipped"]) == (0, 2, 0)
