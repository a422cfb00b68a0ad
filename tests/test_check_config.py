"""``check-config`` checks what the other commands would fail on (DESIGN §6): no roots (78), a
root that is a regular file (78), a missing root (a warning, 0), the database reachable
(PostgreSQL with a short connect timeout, 69 when it is not; ``--offline`` skips the look).
Each problem is one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli_world import Cli, isolate, tree, write_config


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return tree(tmp_path / "lib", {"a.bin": b"a"})


def test_no_roots_is_exit_78_like_scan(cli: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", roots={}, state_dir=tmp_path / "state")
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)
    assert run.messages == [
        "assetd: config: roots: no roots configured: add [[roots]] or pass --root PATH"
    ]
    assert cli("scan", "--config", config).code == 78


def test_a_root_that_is_a_regular_file_is_exit_78(cli: Cli, tmp_path: Path, lib: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    config = write_config(
        tmp_path / "c.toml", roots={"lib": lib, "f": afile}, state_dir=tmp_path / "state"
    )
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)
    assert run.messages == [
        f"assetd: config: roots[1].path: {afile} is a regular file, not a directory"
    ]


def test_a_missing_root_is_a_warning_and_exit_0(cli: Cli, tmp_path: Path, lib: Path) -> None:
    gone = tmp_path / "unplugged"
    config = write_config(
        tmp_path / "c.toml", roots={"lib": lib, "disk": gone}, state_dir=tmp_path / "state"
    )
    run = cli("check-config", "--config", config)
    assert run.code == 0, run.err
    assert run.messages == [
        f"assetd: warning: roots[1].path: {gone} does not exist (a disk not plugged in? "
        "the daemon marks the root unavailable until it appears)"
    ]
    assert run.lines[0] == f"config ok: {config}"


def test_every_problem_is_its_own_line(cli: Cli, tmp_path: Path, lib: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    gone = tmp_path / "gone"
    config = write_config(
        tmp_path / "c.toml",
        roots={"f": afile, "g": gone},
        state_dir=tmp_path / "state",
        url="postgresql://postgres@127.0.0.1:1/none",
    )
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)  # a config problem outranks the database
    assert len(run.messages) == 3, run.messages
    assert run.messages[0].startswith("assetd: config: roots[0].path: ")
    assert run.messages[1].startswith("assetd: warning: roots[1].path: ")
    assert run.messages[2].startswith("assetd: database unavailable (postgresql")


def test_an_unreachable_database_is_exit_69(cli: Cli, tmp_path: Path, lib: Path) -> None:
    # port 1 on localhost: refused at once (a remote host would take the short timeout)
    config = write_config(
        tmp_path / "c.toml",
        roots={"lib": lib},
        state_dir=tmp_path / "state",
        url="postgresql://postgres:pw@127.0.0.1:1/catalog",
    )
    started = time.monotonic()
    run = cli("check-config", "--config", config)
    assert time.monotonic() - started < 10
    assert run.code == 69, (run.out, run.err)
    [line] = run.messages
    assert line.startswith("assetd: database unavailable (postgresql+psycopg://postgres:***@"), line
    assert "pw" not in run.out + run.err
    offline = cli("check-config", "--offline", "--config", config)
    assert offline.code == 0, offline.err
    assert (
        "  database: postgresql+psycopg://postgres:***@127.0.0.1:1/catalog (not checked: --offline)"
        in offline.lines
    )


@pytest.mark.pg
def test_a_reachable_database_is_checked_and_ok(
    cli: Cli, tmp_path: Path, lib: Path, pg_url: str
) -> None:
    config = write_config(
        tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "state", url=pg_url
    )
    run = cli("check-config", "--config", config)
    assert run.code == 0, run.err
    assert any(
        line.startswith("  database: postgresql") and line.endswith("(reachable)")
        for line in run.lines
    ), run.lines


def test_check_config_of_a_real_process_with_no_roots(tmp_path: Path) -> None:
    import subprocess
    import sys

    from cli_world import subprocess_env

    config = write_config(tmp_path / "c.toml", roots={}, state_dir=tmp_path / "state")
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
        "assetd: config: roots: no roots configured: add [[roots]] or pass --root PATH"
    ]


def test_a_catalog_path_that_cannot_be_used_is_exit_78(cli: Cli, tmp_path: Path, lib: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    url = f"sqlite:///{afile}/catalog.db"  # below a regular file: it can never be created
    config = write_config(
        tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "state", url=url
    )
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)
    assert run.messages == [
        f"assetd: config: database.url: cannot create the catalog at {afile}/catalog.db: "
        f"{afile} is not a directory"
    ]
    assert cli("scan", "--config", config).code == 78  # what check-config foretold
    adir = tmp_path / "adir.db"
    adir.mkdir()
    config = write_config(
        tmp_path / "c.toml",
        roots={"lib": lib},
        state_dir=tmp_path / "state",
        url=f"sqlite:///{adir}",
    )
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)
    assert run.messages == [f"assetd: config: database.url: {adir} is not a regular file"]
