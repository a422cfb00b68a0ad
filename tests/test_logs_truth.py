"""``assetd logs``: ``--event batch`` (a bare word) matches the events whose first component it
is; with no FILE, an empty journal is one line saying where it looked, not a silent exit 0."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest

from cli_world import Cli, isolate


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def _log(tmp_path: Path, *names: str) -> Path:
    lines = [
        json.dumps({"timestamp": f"2026-11-25T22:00:0{i}Z", "level": "info", "event": name})
        for i, name in enumerate(names)
    ]
    path = tmp_path / "assetd.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_bare_word_matches_the_first_component(cli: Cli, tmp_path: Path) -> None:
    log = _log(tmp_path, "batch.committed", "batchy.odd", "batch", "cache_state.moved", "x.batch")
    run = cli("logs", log, "--event", "batch", "--json")
    assert run.code == 0, run.err
    assert [line["event"] for line in run.json_lines()] == ["batch.committed", "batch"]
    # a glob still matches the whole name, and a dotted word is the whole name
    glob = cli("logs", log, "--event", "batch*", "--json").json_lines()
    assert [line["event"] for line in glob] == ["batch.committed", "batchy.odd", "batch"]
    exact = cli("logs", log, "--event", "cache_state.moved", "--json").json_lines()
    assert [line["event"] for line in exact] == ["cache_state.moved"]
    part = cli("logs", log, "--event", "cache_state", "--json").json_lines()
    assert [line["event"] for line in part] == ["cache_state.moved"]


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl not installed")
def test_an_empty_journal_says_where_it_looked(cli: Cli) -> None:
    unit = f"assetd-none-{secrets.token_hex(4)}"  # a unit that has never logged
    run = cli("logs", "--unit", unit)
    assert run.out == ""
    assert run.code == 1, run.err
    assert run.messages == [
        f"assetd: no log lines in the journal of unit {unit} (journalctl -u {unit}): pass a "
        "FILE (e.g. assetd run 2>>assetd.log; assetd logs assetd.log), - for stdin, or --user "
        "for the user service"
    ]
