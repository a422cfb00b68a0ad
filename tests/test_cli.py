"""The CLI end to end on real directories and real catalogs (DESIGN §3, §5, §6): ``scan``,
``ls``, ``prune``, ``cleanup``, ``check-config`` and ``db upgrade``, their output, exit codes
and one-line errors.

Most tests call ``assetd.cli.main`` in-process in an isolated environment (no real config,
state below tmp_path); a few run the console script or ``python -m assetd``, and the permission
cases run as ``nobody`` (tests/unprivileged.py).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import update

import assetd
import assetd.catalog.engine
import assetd.catalog.schema
from assetd.catalog.engine import make_engine
from assetd.catalog.models import cache_states as cs
from assetd.config import SYSTEM_CONFIG_PATH
from cli_world import (
    Cli,
    Run,
    catalog_rows,
    is_log_line,
    sqlite_url,
    subprocess_env,
    tree,
    write_config,
)
from unprivileged import NOGROUP_GID, nobody

SUMMARY = re.compile(
    r"scanned (\d+) root\(s\) in \d+\.\d\d s: (\d+) new, (\d+) missing, (\d+) restored, "
    r"(\d+) changed, (\d+) unchanged, (\d+) skipped"
)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return tree(
        tmp_path / "lib",
        {"a.bin": b"a" * 10, "sub/b.bin": b"b" * 20, "sub/c.bin": b"c" * 30},
    )


def summary(run: Run) -> dict[str, int]:
    assert run.code == 0, run.err
    [line] = run.lines
    m = SUMMARY.fullmatch(line)
    assert m, line
    keys = ("roots", "new", "missing", "restored", "changed", "unchanged", "skipped")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def one_error(run: Run, code: int) -> str:
    """The command failed with ``code`` and said so in exactly one line on stderr."""
    assert run.code == code, (run.out, run.err)
    assert run.out == ""
    assert len(run.messages) == 1, run.err
    return run.messages[0]


def assetd_script() -> str:
    """The installed console script of this interpreter (not a pyenv shim: faster)."""
    beside = Path(sys.executable).with_name("assetd")
    if beside.is_file():
        return str(beside)
    found = shutil.which("assetd")
    if found is None:
        pytest.skip("the assetd console script is not installed (pip install -e .)")
    return found


# --- scan: a first run, and where its catalog goes ------------------------------------------


def test_first_scan_with_root_on_a_fresh_machine(tmp_path: Path, lib: Path) -> None:
    """The README's first step, as a person runs it: the console script, no config file."""
    if os.path.exists(SYSTEM_CONFIG_PATH):
        pytest.skip(f"{SYSTEM_CONFIG_PATH} exists on this machine: not a fresh machine")
    proc = subprocess.run(
        [assetd_script(), "scan", "--root", str(lib)],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    run = Run(proc.returncode, proc.stdout, proc.stderr)
    assert summary(run) == {
        "roots": 1,
        "new": 3,
        "missing": 0,
        "restored": 0,
        "changed": 0,
        "unchanged": 0,
        "skipped": 0,
    }
    # logs went to stderr, as JSON lines (stderr is not a TTY); stdout held only the summary
    logs = proc.stderr.splitlines()
    assert logs and all(is_log_line(line) for line in logs)
    assert any('"reconcile.finished"' in line for line in logs)
    state = tmp_path / "xdg" / "assetd"
    catalog = state / "catalog.db"
    assert stat.S_IMODE(catalog.stat().st_mode) == 0o640
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    assert sorted(catalog_rows(sqlite_url(state))) == [
        str(lib / "a.bin"),
        str(lib / "sub/b.bin"),
        str(lib / "sub/c.bin"),
    ]


def test_root_before_or_after_the_subcommand(cli: Cli, lib: Path, tmp_path: Path) -> None:
    other = tree(tmp_path / "other", {"x.bin": b"x"})
    first = cli("--root", lib, "scan", "--json").json_lines()[0]  # before
    assert {k: first[k] for k in ("new", "missing", "restored", "changed", "skipped")} == {
        "new": 3,
        "missing": 0,
        "restored": 0,
        "changed": 0,
        "skipped": 0,
    }
    assert (first["roots"], first["unchanged"], first["unavailable"]) == (1, 0, [])
    again = cli("scan", "--root", lib, "--json").json_lines()[0]  # after
    assert (again["new"], again["unchanged"]) == (0, 3)
    both = cli("--root", lib, "scan", "--json", "--root", other).json_lines()[0]  # both
    assert (both["roots"], both["new"], both["unchanged"]) == (2, 1, 3)


def test_scan_without_roots_is_a_config_error(cli: Cli) -> None:
    line = one_error(cli("scan"), 78)
    assert line.startswith("assetd: config: roots: ")
    assert "--root" in line


# --- missing, restored, changed, and ls ---------------------------------------------------


def test_missing_restored_changed_and_ls(
    cli: Cli, lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tree(tmp_path / "other", {"x.bin": b"x"})
    roots = ("--root", str(lib), "--root", str(other))
    assert summary(cli("scan", *roots))["new"] == 4
    a, b, c, x = (
        str(p) for p in (lib / "a.bin", lib / "sub/b.bin", lib / "sub/c.bin", other / "x.bin")
    )
    away = tmp_path / "away.bin"

    os.rename(a, away)  # gone (rename keeps size and mtime: putting it back is a plain restore)
    assert summary(cli("scan", *roots))["missing"] == 1
    assert cli("ls").lines == [b, c, x]  # ordered by root name, then path; missing hidden
    assert cli("ls", "--missing").lines == [a]
    assert cli("ls", "--all").lines == [a, b, c, x]
    long = cli("ls", "--all", "-l").lines
    assert long[0] == f"missing\t10\t-\t{a}"
    assert long[1] == f"live\t20\t-\t{b}"

    os.rename(away, a)
    back = summary(cli("scan", *roots))
    assert (back["restored"], back["changed"], back["missing"]) == (1, 0, 0)
    assert cli("ls").lines == [a, b, c, x]

    os.rename(a, away)
    assert summary(cli("scan", *roots))["missing"] == 1
    with open(away, "ab") as f:  # changed while it was gone
        f.write(b"more")
    os.rename(away, a)
    back = summary(cli("scan", *roots))
    assert (back["restored"], back["changed"], back["new"]) == (1, 1, 0)

    rows = {r["path"]: r for r in cli("ls", "--json").json_lines()}
    assert set(rows) == {a, b, c, x}
    assert rows[a]["size"] == 14 and rows[a]["needs_verify"] is True
    assert rows[a]["is_missing"] is False and rows[a]["missing_since"] is None
    assert (rows[a]["root"], rows[x]["root"]) == ("lib", "other")
    assert rows[b]["needs_verify"] is False and rows[b]["state_reason"] == "seed"

    # filters: by root name, by directory (absolute or relative to the working directory)
    assert cli("ls", "--in-root", "other").lines == [x]
    assert cli("ls", "--in-root", "lib", "--all").lines == [a, b, c]
    assert cli("ls", str(lib / "sub")).lines == [b, c]
    assert cli("ls", str(lib / "sub") + "/").lines == [b, c]
    monkeypatch.chdir(lib)
    assert cli("ls", "sub").lines == [b, c]
    assert cli("ls", ".").lines == [a, b, c]
    assert cli("ls", "--in-root", "other", ".").lines == []
    line = one_error(cli("ls", "--in-root", "nope"), 2)
    assert "nope" in line


# --- prune --------------------------------------------------------------------------------


def root_names(url: str) -> list[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        names = [
            str(n) for n in conn.exec_driver_sql("SELECT name FROM roots ORDER BY name").scalars()
        ]
    engine.dispose()
    return names


def test_prune_marks_files_outside_the_configured_roots_missing(cli: Cli, tmp_path: Path) -> None:
    root_a = tree(tmp_path / "A", {"a1": b"1", "a2": b"2"})
    root_b = tree(tmp_path / "B", {"b1": b"1", "d/b2": b"2"})
    state = tmp_path / "state"
    both = write_config(tmp_path / "ab.toml", roots={"A": root_a, "B": root_b}, state_dir=state)
    root_c = tree(tmp_path / "C", {"c1": b"1"})  # new in the second config, not scanned yet
    only_a = write_config(tmp_path / "a.toml", roots={"A": root_a, "C": root_c}, state_dir=state)
    assert summary(cli("scan", "--config", both))["new"] == 4
    url = sqlite_url(state)
    before = catalog_rows(url)

    dry = cli("prune", "--dry-run", "--config", only_a)
    assert dry.code == 0, dry.err
    assert dry.lines == ["would mark 2 cache state(s) outside the configured roots missing"]
    assert catalog_rows(url) == before
    assert root_names(url) == ["A", "B"]  # a dry run registers no root either

    run = cli("--config", only_a, "prune")
    assert run.code == 0, run.err
    assert run.lines == ["marked 2 cache state(s) outside the configured roots missing"]
    rows = catalog_rows(url)
    for path, row in rows.items():
        if path.startswith(str(root_b) + "/"):
            assert (row["is_missing"], row["state_reason"]) == (True, "prune")
            assert row["missing_since"] is not None
        else:
            assert row == before[path]
    assert root_names(url) == ["A", "B", "C"]
    assert cli("prune", "--config", only_a).lines == [
        "marked 0 cache state(s) outside the configured roots missing"
    ]

    back = summary(cli("scan", "--config", both))
    assert (back["restored"], back["missing"], back["new"]) == (2, 0, 0)
    assert not any(r["is_missing"] for r in catalog_rows(url).values())


# --- cleanup ------------------------------------------------------------------------------


@pytest.fixture
def aged(cli: Cli, tmp_path: Path) -> tuple[Path, str, dict[str, str]]:
    """A catalog where ``old`` has been missing for 2 h, ``new`` just now, ``shared`` for 2 h
    but its asset is still live at ``live`` (same content: one asset, two paths), and ``keep``
    is live. Returns (config, url, name -> path)."""
    root = tree(
        tmp_path / "lib",
        {"old": b"o", "new": b"n", "shared": b"s", "live": b"s", "keep": b"k"},
    )
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": root}, state_dir=state)
    assert summary(cli("scan", "--config", config))["new"] == 5
    for name in ("old", "new", "shared"):
        os.unlink(root / name)
    assert summary(cli("scan", "--config", config))["missing"] == 3
    paths = {name: str(root / name) for name in ("old", "new", "shared", "live", "keep")}
    url = sqlite_url(state)
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    engine = make_engine(url)
    with engine.begin() as conn:  # test set-up: age two of them instead of waiting
        conn.execute(
            update(cs)
            .where(cs.c.file_path.in_([paths["old"], paths["shared"]]))
            .values(missing_since=two_hours_ago)
        )
        live_asset = (
            conn.execute(cs.select().where(cs.c.file_path == paths["live"]))
            .mappings()
            .one()["asset_id"]
        )
        conn.execute(  # as dedupe will do: one content, one asset
            update(cs).where(cs.c.file_path == paths["shared"]).values(asset_id=live_asset)
        )
    engine.dispose()
    return config, url, paths


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {
            t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one())
            for t in ("assets", "asset_cache_states", "asset_infos", "asset_info_tags")
        }
    engine.dispose()
    return counts


def test_cleanup_refuses_without_yes_when_stdin_is_not_a_tty(
    cli: Cli, aged: tuple[Path, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, url, _ = aged
    before = _counts(url)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a TTY: never asked
    line = one_error(cli("cleanup", "--older-than", "1s", "--config", config), 2)
    assert "--yes" in line
    assert _counts(url) == before


def test_cleanup_dry_run_counts_and_deletes_nothing(
    cli: Cli, aged: tuple[Path, str, dict[str, str]]
) -> None:
    config, url, _ = aged
    before = _counts(url)
    run = cli("cleanup", "--older-than", "1h", "--dry-run", "--config", config)
    assert run.code == 0, run.err
    assert run.lines[0] == "would delete 1 asset(s) missing for longer than 1h"
    assert run.lines[1].split() == ["ASSET", "MISSING", "SINCE", "SIZE", "LAST", "PATH"]
    assert len(run.lines) == 3 and run.lines[2].endswith("/lib/old")
    assert _counts(url) == before


def test_cleanup_deletes_only_assets_missing_everywhere_for_longer(
    cli: Cli, aged: tuple[Path, str, dict[str, str]]
) -> None:
    config, url, paths = aged
    before = _counts(url)
    run = cli("cleanup", "--older-than", "1h", "--yes", "--config", config)
    assert run.code == 0, run.err
    assert run.lines == ["deleted 1 asset(s) missing for longer than 1h"]
    after = _counts(url)
    assert after["assets"] == before["assets"] - 1
    assert after["asset_cache_states"] == before["asset_cache_states"] - 1
    assert after["asset_infos"] == before["asset_infos"] - 1
    rows = catalog_rows(url)
    assert paths["old"] not in rows
    assert rows[paths["new"]]["is_missing"] is True  # missing, but not for long enough
    assert rows[paths["shared"]]["is_missing"] is True  # its asset is live elsewhere
    assert {paths["live"], paths["keep"]} <= set(rows)
    engine = make_engine(url)
    with engine.connect() as conn:  # the infos of every kept asset stay
        orphans = conn.exec_driver_sql(
            "SELECT count(*) FROM asset_cache_states c WHERE NOT EXISTS "
            "(SELECT 1 FROM asset_infos i WHERE i.asset_id = c.asset_id)"
        ).scalar_one()
    engine.dispose()
    assert orphans == 0
    again = cli("cleanup", "--older-than", "1h", "--config", config)  # nothing left: no question
    assert again.lines == ["deleted 0 asset(s) missing for longer than 1h"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cleanup_asks_on_a_tty(
    cli: Cli, aged: tuple[Path, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, url, _ = aged
    before = _counts(url)
    monkeypatch.setattr(sys, "stdin", _Tty("n\n"))
    run = cli("cleanup", "--older-than", "1h", "--config", config)
    assert run.code == 1
    assert run.out.endswith("nothing deleted\n")
    assert _counts(url) == before
    monkeypatch.setattr(sys, "stdin", _Tty("y\n"))
    run = cli("cleanup", "--older-than", "1h", "--config", config)
    assert run.code == 0, run.err
    assert run.out.endswith("deleted 1 asset(s) missing for longer than 1h\n")
    assert _counts(url)["assets"] == before["assets"] - 1


def test_cleanup_bad_duration_is_a_usage_error(cli: Cli, lib: Path, xdg: Path) -> None:
    for bad in ("soon", "1y", "1.5.3h"):
        line = one_error(cli("cleanup", "--older-than", bad, "--root", lib), 2)
        assert line.startswith("assetd: --older-than: "), line
    assert not xdg.exists()  # refused before the catalog was opened


# --- check-config ---------------------------------------------------------------------------


def test_check_config_ok_prints_the_roots(cli: Cli, tmp_path: Path, lib: Path) -> None:
    other = tree(tmp_path / "other", {})
    state = tmp_path / "state"
    config = write_config(
        tmp_path / "c.toml",
        roots={"models": lib},
        state_dir=state,
        extra=f'[[roots]]\nname = "nas"\npath = "{other}"\npolling = true\n',
    )
    run = cli("check-config", "--config", config)
    assert run.code == 0, run.err
    assert run.lines == [
        f"config ok: {config}",
        f"  database: sqlite:///{state}/catalog.db",
        f"  state_dir: {state}",
        f"  root models: {lib} (watching)",
        f"  root nas: {other} (polling)",
    ]
    assert not state.exists()  # checking writes nothing


def test_check_config_hides_a_database_password(cli: Cli, tmp_path: Path, lib: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[database]\nurl = "postgresql://assetd:s3cret@db.example:5432/catalog"\n'
        f'[[roots]]\nname = "r"\npath = "{tmp_path / "lib"}"\n'
    )
    run = cli("check-config", "--offline", "--config", config)
    assert run.code == 0, run.err
    assert "s3cret" not in run.out + run.err
    assert (
        "  database: postgresql+psycopg://assetd:***@db.example:5432/catalog"
        " (not checked: --offline)" in run.lines
    )


INVALID = {
    "unknown key": ("[daemon]\nhots = 'x'\n", "daemon.hots"),
    "wrong type": ("[watch]\nquiet_ms = '50'\n", "watch.quiet_ms"),
    "nested roots": (
        "[[roots]]\nname = 'a'\npath = '{tmp}/lib'\n"
        "[[roots]]\nname = 'b'\npath = '{tmp}/lib/sub'\n",
        "roots[1].path",
    ),
    "state_dir inside a root": (
        "[daemon]\nstate_dir = '{tmp}/lib/.state'\n[[roots]]\nname = 'a'\npath = '{tmp}/lib'\n",
        "daemon.state_dir",
    ),
    "bad duration": ("[reconcile]\ninterval = 'often'\n", "reconcile.interval"),
    "bad url": ("[database]\nurl = 'mysql://x/y'\n", "database.url"),
    "syntax": ("[daemon\n", "c.toml"),
}


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_config_is_exit_78_and_one_line_naming_the_key(
    cli: Cli, tmp_path: Path, lib: Path, case: str
) -> None:
    text, key = INVALID[case]
    config = tmp_path / "c.toml"
    config.write_text(text.format(tmp=tmp_path))
    for command in ("check-config", "scan", "ls"):
        line = one_error(cli(command, "--config", config), 78)
        assert line.startswith("assetd: config: ") and key in line, line
    assert not (tmp_path / "xdg").exists()


def test_bad_config_exit_code_of_the_real_process(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[watch]\nqueue_size = 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "assetd", "check-config", "--config", str(config)],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 78
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "assetd: config: watch.queue_size: must be between 1000 and 10000000, got 0"
    ]


def test_missing_config_file_is_exit_78(cli: Cli, tmp_path: Path) -> None:
    line = one_error(cli("check-config", "--config", tmp_path / "nope.toml"), 78)
    assert line.startswith("assetd: config: --config: no such file")


# --- db upgrade and schema mismatches ----------------------------------------------------


def test_db_upgrade_creates_then_is_current(cli: Cli, xdg: Path) -> None:
    run = cli("db", "upgrade")
    assert run.code == 0, run.err
    assert run.lines == ["catalog schema created"]
    assert stat.S_IMODE((xdg / "assetd").stat().st_mode) == 0o750
    assert stat.S_IMODE((xdg / "assetd" / "catalog.db").stat().st_mode) == 0o640
    again = cli("db", "upgrade")
    assert again.code == 0, again.err
    assert again.lines == ["catalog schema current"]
    assert cli("ls").code == 0  # an empty, current catalog lists nothing
    assert cli("ls").out == ""


def test_ls_before_any_catalog_tells_to_run_scan(cli: Cli, xdg: Path) -> None:
    line = one_error(cli("ls"), 1)
    assert "assetd scan" in line
    assert not xdg.exists()  # a reader creates nothing


def test_prune_dry_run_creates_nothing(cli: Cli, xdg: Path, lib: Path) -> None:
    line = one_error(cli("prune", "--dry-run", "--root", str(lib)), 1)
    assert "assetd scan" in line
    assert not xdg.exists()  # a dry run opens read-only: no catalog, no host id


def test_a_state_dir_that_cannot_be_created_is_one_line(
    cli: Cli, tmp_path: Path, lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "file" / "xdg"))  # below a file
    for command in (("scan", "--root", str(lib)), ("db", "upgrade")):
        line = one_error(cli(*command), 78)
        assert line.startswith(f"assetd: config: daemon.state_dir: cannot create {tmp_path}/")


def _stamp(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{revision}'")
    engine.dispose()


def test_a_newer_schema_is_refused_with_one_line(cli: Cli, lib: Path, xdg: Path) -> None:
    assert summary(cli("scan", "--root", lib))["new"] == 3
    _stamp(sqlite_url(xdg / "assetd"), "ffffffffffff")
    for command in (("scan", "--root", str(lib)), ("ls",), ("db", "upgrade")):
        line = one_error(cli(*command), 1)
        assert line == (
            "assetd: catalog schema ffffffffffff is newer than this assetd knows (head "
            f"{assetd.catalog.schema.head_revision()}): upgrade assetd; "
            "`assetd db upgrade` cannot go back"
        )


def test_an_older_schema_is_refused_until_db_upgrade(
    cli: Cli, lib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert summary(cli("scan", "--root", lib))["new"] == 3
    monkeypatch.setattr(assetd.catalog.schema, "head_revision", lambda: "0002_future")
    for command in (("scan", "--root", str(lib)), ("ls",), ("prune", "--root", str(lib))):
        line = one_error(cli(*command), 1)
        assert re.fullmatch(
            r"assetd: catalog schema \w+ is older than this assetd's 0002_future: "
            r"run `assetd db upgrade`",
            line,
        ), line


# --- database faults ----------------------------------------------------------------------


def test_a_locked_catalog_is_exit_75_and_readers_still_read(
    cli: Cli, lib: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert summary(cli("scan", "--root", lib))["new"] == 3
    monkeypatch.setattr(assetd.catalog.engine, "BUSY_TIMEOUT_MS", 200)
    other = sqlite3.connect(xdg / "assetd" / "catalog.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        for command in (("scan", "--root", str(lib)), ("prune", "--root", str(lib))):
            line = one_error(cli(*command), 75)
            assert line.startswith("assetd: catalog is locked by another writer (sqlite:///")
        assert len(cli("ls").lines) == 3  # WAL: the CLI reads while another writes
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert summary(cli("scan", "--root", lib))["unchanged"] == 3


def test_an_unreachable_postgresql_is_exit_69(cli: Cli, tmp_path: Path, lib: Path) -> None:
    url = "postgresql+psycopg://postgres:pw@127.0.0.1:1/x"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, url=url)
    for command in ("scan", "ls", "prune", "db"):
        argv = ("db", "upgrade") if command == "db" else (command,)
        line = one_error(cli(*argv, "--config", config), 69)
        assert line.startswith("assetd: database unavailable (postgresql+psycopg://postgres:***@")
        assert "pw@" not in line


def test_catalog_nobody_can_read_but_not_write(cli: Cli) -> None:
    """A writer that cannot write in the state directory gets 78 naming it (an unusable state
    directory, issue 9); a reader without write access (and no daemon, so no -shm to share)
    reads through SQLite's immutable mode (DESIGN §6)."""
    with nobody() as nb:
        lib = tree(nb.base / "lib", {"a.bin": b"a", "d/b.bin": b"b"})
        state = nb.base / "state"
        config = write_config(nb.base / "c.toml", roots={"lib": lib}, state_dir=state, host="h")
        assert summary(cli("scan", "--config", config))["new"] == 2  # as root
        catalog = state / "catalog.db"
        for p in (state, catalog):  # group-readable for nobody's group, as an operator would
            os.chown(p, 0, NOGROUP_GID)
        assert sorted(os.listdir(state)) == ["catalog.db"]  # no -wal, no -shm
        before = catalog.read_bytes()

        writer = nb.assetd("scan", "--config", str(config))
        assert writer.returncode == 78, writer.stderr
        assert writer.stdout == ""
        [line] = [x for x in writer.stderr.splitlines() if not is_log_line(x)]
        assert line == (
            f"assetd: config: daemon.state_dir: cannot write in {state}: Permission denied"
        )

        reader = nb.assetd("ls", "--config", str(config))
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.splitlines() == [str(lib / "a.bin"), str(lib / "d/b.bin")]
        assert sorted(os.listdir(state)) == ["catalog.db"]
        assert catalog.read_bytes() == before


# --- usage --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        [],
        ["cleanup"],
        ["cleanup", "--yes"],
        ["ls", "--missing", "--all"],
        ["scan", "--no-such-flag"],
        ["db"],
        ["db", "downgrade"],
    ],
    ids=repr,
)
def test_usage_errors_are_exit_2(cli: Cli, argv: list[str], xdg: Path) -> None:
    run = cli(*argv)
    assert run.code == 2
    assert run.out == ""
    assert "error:" in run.err.splitlines()[-1]
    assert not xdg.exists()


def test_version(cli: Cli) -> None:
    run = cli("--version")
    assert run.code == 0
    assert run.lines == [f"assetd {assetd.__version__}"]


def test_python_m_assetd_help(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "assetd", "--help"],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for command in ("scan", "ls", "prune", "cleanup", "check-config", "db"):
        assert command in proc.stdout
    assert "--config" in proc.stdout and "--root" in proc.stdout
