"""``why`` round-trips the escaped form ``ls`` prints for a non-UTF-8 name (it finds the row and
looks at the real file), shows names escaped once; a file renamed away is traced by the logs:
``cache_state.moved`` carries both ends, so ``logs --path OLD`` finds the move, and ``why OLD``
names where it went (the move history, ``asset_moves``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_world import Cli, isolate, subprocess_env, tree, write_config
from daemon_harness import Daemon
from helpers import wait_until


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def test_why_takes_the_form_ls_prints_for_a_non_utf8_name(cli: Cli, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    with open(os.path.join(os.fsencode(lib), b"bad\xff.bin"), "wb") as f:
        f.write(b"x" * 5)
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "s")
    assert cli("scan", "--config", config).code == 0
    [shown] = cli("ls", "--config", config).lines
    assert shown == f"{lib}/bad\\xff.bin"
    run = cli("why", shown, "--config", config)
    assert run.code == 0, run.err
    assert run.lines[0] == shown
    assert "  state:     live since" in run.out
    assert "  on disk:   present, same size and mtime as catalogued" in run.lines, run.out
    assert "\\\\x" not in run.out, run.out  # escaped once, never twice
    assert "  info:      #1 'bad\\xff.bin', no metadata" in run.lines, run.out
    report = json.loads(cli("why", shown, "--json", "--config", config).out)
    assert report["on_disk"]["exists"] is True and report["on_disk"]["matches_catalog"] is True
    # the OS form (the real bytes) finds the same row
    real = os.fsdecode(os.path.join(os.fsencode(lib), b"bad\xff.bin"))
    assert cli("why", real, "--config", config).lines[0] == shown


def test_a_rename_is_logged_with_both_ends_and_why_old_points_at_the_logs(
    cli: Cli, tmp_path: Path
) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a" * 7, "sub/keep.bin": b"k"})
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"lib": lib})
    old, new = lib / "a.bin", lib / "sub" / "renamed.bin"
    try:
        daemon.start()
        wait_until(lambda: daemon.is_live(old), 20, what="a.bin catalogued")
        os.rename(old, new)
        wait_until(lambda: daemon.is_live(new), 20, what="the rename applied")
    finally:
        assert daemon.stop() == 0
        daemon.close()
    moved = [e for e in daemon.log_events() if e["event"] == "cache_state.moved"]
    assert moved, daemon.log_text()
    assert moved[0]["paths"] == [str(new)] and moved[0]["sources"] == [str(old)], moved
    found = cli("logs", daemon.log_path, "--path", old, "--json")
    assert found.code == 0, found.err
    assert [line["event"] for line in found.json_lines()] == ["cache_state.moved"]
    run = cli("why", old, "--config", daemon.config)
    assert run.code == 0, run.err
    assert "  not in the catalog" in run.lines
    said = [line for line in run.lines if line.startswith("  moved:")]
    assert said and said[0].startswith(f"  moved:     to {new} at "), run.out
    assert f"  now at:    {new}, live, with its metadata (`assetd why {new}`)" in run.lines
    never = cli("why", lib / "never.bin", "--config", daemon.config)
    assert (
        f"  moved?     the move history knows no move of it; if it was renamed or moved, "
        f"`assetd logs --path {lib / 'never.bin'} --event cache_state.moved` shows where to"
    ) in never.lines, never.out


def _assetd(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assetd", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_move_confirmed_by_the_hash_is_logged_with_both_ends(tmp_path: Path) -> None:
    """A hashed file moved while the daemon is down: the start-up reconcile guesses the move (same
    inode, size, mtime), the hasher confirms it by the content. ``logs --path OLD`` (a real CLI
    process) prints that move with its new path, and ``why OLD`` says where the file went."""
    lib = tree(tmp_path / "lib", {"a.bin": b"a" * 70, "sub/keep.bin": b"k"})
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"lib": lib})
    old, new = lib / "a.bin", lib / "sub" / "went.bin"

    def hashed(path: Path) -> bool:
        rows = daemon.query(
            "SELECT a.hash FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
            "WHERE c.file_path = ? AND c.is_missing = 0 AND c.needs_verify = 0",
            str(path),
        )
        return bool(rows) and rows[0][0] is not None

    try:
        daemon.start()
        wait_until(lambda: hashed(old), 30, what="a.bin hashed")
        assert daemon.stop() == 0
        os.rename(old, new)  # while nobody watches: no rename reaches the daemon
        daemon.start()
        wait_until(  # the guess confirmed: the old row gone, the new path hashed on its asset
            lambda: daemon.row(old) is None and hashed(new), 40, what="the move confirmed"
        )
    finally:
        assert daemon.stop() == 0
        daemon.close()
    env = subprocess_env(tmp_path)
    found = _assetd(env, "logs", daemon.log_path, "--path", old, "--event", "cache_state.moved")
    assert found.returncode == 0, found.stderr
    moved = [line for line in found.stdout.splitlines() if "cache_state.moved" in line]
    assert moved and str(new) in moved[-1], found.stdout + daemon.log_text()
    as_json = _assetd(env, "logs", daemon.log_path, "--path", old, "--json")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    [move] = [e for e in events if e["event"] == "cache_state.moved"]
    assert move["paths"] == [str(new)] and move["sources"] == [str(old)], move
    [guess] = [e for e in events if e["event"] == "cache_state.move_candidates"]
    assert guess["paths"] == [str(new)] and guess["sources"] == [str(old)], guess
    why = _assetd(env, "why", old, "--config", daemon.config)
    assert why.returncode == 0, why.stderr
    lines = why.stdout.splitlines()
    said = [line for line in lines if line.startswith("  moved:")]
    assert said and said[0].startswith(f"  moved:     to {new} at "), why.stdout
    assert f"  now at:    {new}, live, with its metadata (`assetd why {new}`)" in lines, why.stdout
