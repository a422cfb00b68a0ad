"""``status`` tells the truth: with no daemon running no root shows as ``watching`` (it says
they are not watched, and since when the last daemon stopped); after ``roots move`` with the
config still naming the old path, the attention line says what the next start would really do
(and a scan does just that)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from cli_world import Cli, catalog_rows, isolate, sqlite_url, tree, write_config
from daemon_harness import Daemon
from helpers import wait_until


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def _state_cells(out: str, root: str) -> str:
    row = next(line for line in out.splitlines() if line.startswith(f"{root} "))
    return row


def test_no_daemon_ever_roots_are_not_watched(cli: Cli, tmp_path: Path) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "s")
    assert cli("scan", "--config", config).code == 0
    run = cli("status", "--config", config)
    assert run.code == 0, run.err
    assert "watching" not in run.out, run.out
    assert "not watched" in _state_cells(run.out, "lib")
    assert run.lines[2] == (
        "roots:    not being watched: no daemon has run on this host (start it: `assetd run`)"
    )
    [root] = json.loads(cli("status", "--json", "--config", config).out)["roots"]
    assert root["watched"] is False and root["not_watched_since"] is None


def test_after_the_daemon_stopped_roots_are_not_watched_since_then(
    cli: Cli, tmp_path: Path
) -> None:
    lib = tree(tmp_path / "dlib", {"a.bin": b"a"})
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"lib": lib})
    try:
        daemon.start()

        def running() -> bool:
            report = json.loads(cli("status", "--json", "--config", daemon.config).out)
            return bool(report["daemons"]) and report["daemons"][0]["status"] == "running"

        wait_until(running, 20, what="status: running")
        run = cli("status", "--config", daemon.config)
        assert "watching" in _state_cells(run.out, "lib")  # while it runs: the truth too
        [root] = json.loads(cli("status", "--json", "--config", daemon.config).out)["roots"]
        assert root["watched"] is True
    finally:
        assert daemon.stop() == 0
        daemon.close()
    run = cli("status", "--config", daemon.config)
    assert "watching" not in run.out, run.out
    assert "not watched" in _state_cells(run.out, "lib")
    line = next(x for x in run.lines if x.startswith("roots:    "))
    assert line.startswith("roots:    not being watched since the daemon stopped 20"), line
    [root] = json.loads(cli("status", "--json", "--config", daemon.config).out)["roots"]
    assert root["watched"] is False and root["not_watched_since"].startswith("20")


def test_after_roots_move_the_attention_line_says_what_will_happen(
    cli: Cli, tmp_path: Path
) -> None:
    old = tree(tmp_path / "old", {"a.bin": b"a", "sub/b.bin": b"bb"})
    state = tmp_path / "s"
    config = write_config(tmp_path / "c.toml", roots={"m": old}, state_dir=state)
    assert cli("scan", "--config", config).code == 0
    new = tmp_path / "new"
    shutil.copytree(old, new)
    shutil.rmtree(old)
    moved = cli("roots", "move", "m", new, "--config", config)
    assert moved.code == 0, moved.err
    report = json.loads(cli("status", "--json", "--config", config).out)
    [a] = [a for a in report["attention"] if a["kind"] == "path-changed"]
    message = a["message"]
    assert "mark the old paths missing" not in message
    assert (
        f"root m is configured at {old} but catalogued at {new}: with this config, the next "
        f"`assetd run` or `assetd scan` points the root back at {old} and marks its 2 file(s) "
        f"catalogued under {new} missing" in message
    ), message
    assert f"set path = {json.dumps(str(new))}" in message, message
    # and that is what really happens
    assert cli("scan", "--config", config).code == 0
    rows = catalog_rows(sqlite_url(state))
    assert {p: r["is_missing"] for p, r in rows.items()} == {
        os.path.join(new, "a.bin"): True,
        os.path.join(new, "sub/b.bin"): True,
    }
