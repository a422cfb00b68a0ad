"""Every failure is one line, never a traceback, with the exit code of DESIGN §6 (issue 9).

An unusable state directory is exit 78 from ``run``, ``scan`` and ``check-config`` alike; an
absurd number or a TOML nested too deeply is exit 78 at load; a corrupt catalog (garbage, cut
short, bad pages: made by writing over a real one) is exit 65 from ``run``, ``scan``, ``status``
and ``ls`` with a line that says what to do; ``assetd logs`` shows a line it cannot parse as it
is and goes on. ``run`` is the real process (``python -m assetd run``); the others run
in-process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cli_world import Cli, Run, subprocess_env, tree, write_config

EXIT_CORRUPT = 65
EXIT_CONFIG = 78


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    return tree(tmp_path / "lib", {f"d{i}/f{j}.bin": b"x" * j for i in range(4) for j in range(30)})


def one_line(run: Run, code: int) -> str:
    """The command failed with ``code``, said so in exactly one line, and showed no traceback."""
    assert "Traceback" not in run.err, run.err
    assert run.code == code, (run.out, run.err)
    assert len(run.messages) == 1, run.err
    return run.messages[0]


def run_daemon(config: Path, tmp_path: Path) -> Run:
    """``python -m assetd run`` for a config that must make it exit at once."""
    proc = subprocess.run(
        [sys.executable, "-m", "assetd", "run", "--config", str(config)],
        env=subprocess_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


# --- an unusable state directory: exit 78 from every command ---------------------------------


@contextlib.contextmanager
def _read_only_mount(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("mount -t tmpfs refused here")
    try:
        (mnt / "state").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        yield mnt / "state"
    finally:
        if subprocess.run(["umount", str(mnt)]).returncode:
            subprocess.run(["umount", "-l", str(mnt)])


@contextlib.contextmanager
def _immutable(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "immutable"
    state.mkdir()
    if shutil.which("chattr") is None:
        pytest.skip("no chattr")
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True).returncode:
        pytest.skip("chattr +i refused on this filesystem")
    try:
        yield state
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)


@contextlib.contextmanager
def _under_a_file(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "plain").write_bytes(b"")
    yield tmp_path / "plain" / "state"


@contextlib.contextmanager
def _is_a_file(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "state-file").write_bytes(b"")
    yield tmp_path / "state-file"


STATE_CASES: dict[str, Callable[[Path], contextlib.AbstractContextManager[Path]]] = {
    "read-only mount": _read_only_mount,
    "immutable": _immutable,
    "under a regular file": _under_a_file,
    "state_dir is a file": _is_a_file,
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_an_unusable_state_dir_is_exit_78_everywhere(
    case: str, cli: Cli, tmp_path: Path, lib: Path
) -> None:
    with STATE_CASES[case](tmp_path) as state:
        config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
        lines = {}
        for command in ("check-config", "scan"):
            line = one_line(cli(command, "--config", config), EXIT_CONFIG)
            assert line.startswith("assetd: config: daemon.state_dir: "), line
            assert str(state) in line, line
            lines[command] = line
        run = run_daemon(config, tmp_path)
        line = one_line(run, EXIT_CONFIG)
        assert line.startswith("assetd: config: daemon.state_dir: "), line
        assert lines["scan"] == line  # the same line, whatever the command


def test_a_state_dir_to_be_created_is_fine_for_check_config(
    cli: Cli, tmp_path: Path, lib: Path
) -> None:
    state = tmp_path / "not" / "yet"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    run = cli("check-config", "--config", config)
    assert run.code == 0, run.err
    assert not state.exists()  # checking creates nothing


# --- absurd values and deep nesting: exit 78 at load -----------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[hashing]\nworkers = 100000\n", "hashing.workers"),
        ("[hashing]\nworkers = 0\n", "hashing.workers"),
        ("[watch]\nqueue_size = 10\n", "watch.queue_size"),
        ("[watch]\nquiet_ms = 86400000\nmax_delay_ms = 86400000\n", "watch.quiet_ms"),
        ("[watch]\nmax_delay_ms = 86400000\n", "watch.max_delay_ms"),
        ("[reconcile]\ninterval = '1ms'\n", "reconcile.interval"),
        ("[reconcile]\ninterval = 1e300\n", "reconcile.interval"),
        ("[database]\npool_size = 100000\n", "database.pool_size"),
        ("[hashing]\nmax_bytes_per_sec = 10\n", "hashing.max_bytes_per_sec"),
        ("[[roots]]\nname = 'r'\npath = '/srv/r'\npoll_interval = 0.0001\n", "poll_interval"),
        ("[[roots]]\nname = 'r'\npath = '/srv/r'\npoll_interval = '400d'\n", "poll_interval"),
    ],
)
def test_an_absurd_number_is_a_range_error_at_load(
    cli: Cli, tmp_path: Path, text: str, key: str
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    line = one_line(cli("check-config", "--config", config), EXIT_CONFIG)
    assert line.startswith("assetd: config: ") and key in line, line
    assert "must be" in line, line


def test_every_range_is_documented_in_the_example_file() -> None:
    import dataclasses

    from assetd import config as cfg

    example = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text()
    lines = example.splitlines()
    classes = (cfg.RootConfig, cfg.DatabaseConfig, cfg.WatchConfig, cfg.ReconcileConfig)
    checked = 0
    for cls in (*classes, cfg.HashingConfig):
        for spec in dataclasses.fields(cls):
            if "min" not in spec.metadata:
                continue
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{spec.name} = "))
            comment = " ".join(lines[max(0, at - 3) : at])
            assert "Range:" in comment, f"{spec.name}: no 'Range:' in {comment!r}"
            checked += 1
    assert checked == 9  # [watch] min_quiet_ms (issue 15) is the ninth


def test_workers_100000_never_reaches_the_daemon(tmp_path: Path, lib: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        roots={"lib": lib},
        state_dir=tmp_path / "state",
        extra="[hashing]\nworkers = 100000\n",
    )
    line = one_line(run_daemon(config, tmp_path), EXIT_CONFIG)
    assert "hashing.workers" in line and "64" in line, line


def test_deeply_nested_toml_is_one_line(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    line = one_line(cli("check-config", "--config", config), EXIT_CONFIG)
    assert str(config) in line and "nest" in line, line
    config.write_text("x = " + "{a = " * 100_000 + "1" + "}" * 100_000 + "\n")  # inline tables
    line = one_line(cli("check-config", "--config", config), EXIT_CONFIG)
    assert str(config) in line and "nest" in line, line


# --- a corrupt catalog: exit 65 and what to do -----------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(db.stat().st_size))


def _truncated(db: Path) -> None:
    os.truncate(db, 4096 + 2048)


def _bad_pages(db: Path) -> None:
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))


CORRUPTIONS = {"garbage": _garbage, "truncated": _truncated, "bad pages": _bad_pages}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_catalog_is_exit_65_with_what_to_do(
    how: str, cli: Cli, tmp_path: Path, lib: Path
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    assert cli("scan", "--config", config).code == 0
    db = state / "catalog.db"
    for leftover in (state / "catalog.db-wal", state / "catalog.db-shm"):
        leftover.unlink(missing_ok=True)
    CORRUPTIONS[how](db)
    for command in ("scan", "ls", "status"):
        line = one_line(cli(command, "--config", config), EXIT_CORRUPT)
        assert str(db) in line and "corrupt" in line, line
        assert "PRAGMA integrity_check" in line and "backup" in line, line
    line = one_line(run_daemon(config, tmp_path), EXIT_CORRUPT)
    assert str(db) in line and "corrupt" in line, line


# --- assetd logs: a line it cannot parse is shown as it is ---------------------------------


def test_logs_shows_a_deeply_nested_line_as_is_and_goes_on(cli: Cli, tmp_path: Path) -> None:
    nested = "{" + '"event": ' + "[" * 100_000 + "]" * 100_000 + "}"
    log = tmp_path / "daemon.log"
    log.write_text(
        '{"timestamp": "2026-01-01T10:00:00Z", "level": "info", "event": "first.line"}\n'
        f"{nested}\n"
        '{"timestamp": "2026-01-01T10:00:01Z", "level": "info", "event": "last.line"}\n'
    )
    run = cli("logs", str(log), "--color", "never")
    assert "Traceback" not in run.err, run.err[-2000:]
    assert run.code == 0, run.err[-2000:]
    lines = [line for line in run.out.splitlines() if not line.startswith("-- ")]  # dates
    assert len(lines) == 3, [line[:80] for line in lines]
    assert "first.line" in lines[0] and "last.line" in lines[2]
    assert lines[1].endswith(nested)
