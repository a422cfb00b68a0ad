"""Safe prompts and complete dry runs: ``cleanup --dry-run`` lists what it would delete (text
and ``--json``), ``--older-than 0s`` means every missing path now, Ctrl-D at a ``[y/N]`` prompt
(``cleanup``, ``roots retire``, in a real process on a real pseudo-terminal) is "no";
``missing`` has a header and aligned columns; ``hash`` with nothing to do says so."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from cli_world import Cli, catalog_rows, isolate, sqlite_url, subprocess_env, tree, write_config


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def _world(cli: Cli, tmp_path: Path) -> tuple[Path, Path, Path]:
    lib = tree(tmp_path / "lib", {"keep.bin": b"k", "gone/a.bin": b"a" * 10, "b.bin": b"b" * 3})
    state = tmp_path / "s"
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=state)
    assert cli("scan", "--config", config).code == 0
    (lib / "gone/a.bin").unlink()
    (lib / "b.bin").unlink()
    assert cli("scan", "--config", config).code == 0
    return lib, state, config


def test_cleanup_dry_run_lists_what_it_would_delete(cli: Cli, tmp_path: Path) -> None:
    lib, state, config = _world(cli, tmp_path)
    run = cli("cleanup", "--older-than", "0s", "--dry-run", "--config", config)
    assert run.code == 0, run.err
    assert run.lines[0] == "would delete 2 asset(s) missing for longer than 0s"
    assert run.lines[1].split() == ["ASSET", "MISSING", "SINCE", "SIZE", "LAST", "PATH"]
    listed = {line.split()[-1]: line.split() for line in run.lines[2:4]}
    assert set(listed) == {str(lib / "gone/a.bin"), str(lib / "b.bin")}
    assert listed[str(lib / "gone/a.bin")][-3:-1] == ["10", "B"]
    assert listed[str(lib / "b.bin")][1].startswith("20")  # the missing-since date
    report = json.loads(
        cli("cleanup", "--older-than", "0s", "--dry-run", "--json", "--config", config).out
    )
    assert report["dry_run"] is True and report["count"] == 2
    by_path = {a["last_path"]: a for a in report["assets"]}
    assert by_path[str(lib / "gone/a.bin")]["size"] == 10
    assert by_path[str(lib / "b.bin")]["missing_since"].startswith("20")
    assert isinstance(by_path[str(lib / "b.bin")]["asset_id"], int)
    assert len(catalog_rows(sqlite_url(state))) == 3  # nothing deleted


def test_cleanup_older_than_0s_deletes_everything_missing_now(cli: Cli, tmp_path: Path) -> None:
    lib, state, config = _world(cli, tmp_path)
    run = cli("cleanup", "--older-than", "0s", "--yes", "--config", config)
    assert run.code == 0, run.err
    assert run.lines[0] == "deleted 2 asset(s) missing for longer than 0s"
    assert set(catalog_rows(sqlite_url(state))) == {str(lib / "keep.bin")}


def _on_a_tty(argv: list[str], env: dict[str, str], answer: bytes) -> tuple[int, str]:
    """Run ``python -m assetd ARGV`` with a real pseudo-terminal as stdin (and stdout), type
    ``answer`` (Ctrl-D is b"\\x04"); its exit code and what it wrote."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assetd", *argv],
            stdin=slave,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(slave)
        os.write(master, answer)  # a canonical-mode tty keeps it until the prompt reads
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    return proc.returncode, out.decode(errors="replace") + err.decode(errors="replace")


def test_ctrl_d_at_the_cleanup_prompt_is_no(cli: Cli, tmp_path: Path) -> None:
    _lib, state, config = _world(cli, tmp_path)
    code, said = _on_a_tty(
        ["cleanup", "--older-than", "0s", "--config", str(config)],
        subprocess_env(tmp_path),
        b"\x04",
    )
    assert "Traceback" not in said and "EOFError" not in said, said
    assert "[y/N]" in said and "nothing deleted" in said, said
    assert code == 1
    assert len(catalog_rows(sqlite_url(state))) == 3


def test_ctrl_d_at_the_retire_prompt_is_no(cli: Cli, tmp_path: Path) -> None:
    _lib, state, _config = _world(cli, tmp_path)
    other = write_config(
        tmp_path / "c2.toml", roots={"x": tree(tmp_path / "x", {})}, state_dir=state
    )
    code, said = _on_a_tty(
        ["roots", "retire", "lib", "--config", str(other)], subprocess_env(tmp_path), b"\x04"
    )
    assert "Traceback" not in said and "EOFError" not in said, said
    assert "[y/N]" in said and "nothing changed" in said, said
    assert code == 1
    assert len(catalog_rows(sqlite_url(state))) == 3


def test_missing_has_a_header_and_aligned_columns(cli: Cli, tmp_path: Path) -> None:
    long = "a-very-long-file-name-that-is-longer-than-the-others-by-far.safetensors"
    lib = tree(tmp_path / "lib", {"x.bin": b"x", f"deep/{long}": b"y" * 2000, "keep": b"k"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "s")
    assert cli("scan", "--config", config).code == 0
    (lib / "x.bin").unlink()
    (lib / "deep" / long).unlink()
    assert cli("scan", "--config", config).code == 0
    run = cli("missing", "--config", config)
    assert run.code == 0, run.err
    header = run.lines[0]
    assert header.split() == ["NAME", "MISSING", "FOR", "REASON", "SIZE"], run.out
    rows = [
        line for line in run.lines if line.startswith("    ") and not line.startswith("    NAME")
    ]
    assert len(rows) == 2, run.out
    at = header.index("MISSING FOR") + len("MISSING FOR")
    reason = header.index("REASON")
    for row in rows:
        assert row[at - 1] != " " and row[at] == " ", (header, row)  # ages end under the header
        assert row[reason : reason + len("reconcile")] == "reconcile", (header, row)
        assert len(row.rstrip()) == len(header.rstrip()), (header, row)  # sizes end together


def test_hash_with_nothing_to_do_says_so(cli: Cli, tmp_path: Path) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    config = write_config(tmp_path / "c.toml", roots={"lib": lib}, state_dir=tmp_path / "s")
    assert cli("scan", "--config", config).code == 0
    assert cli("hash", "--config", config).code == 0
    run = cli("hash", "--config", config)
    assert run.code == 0, run.err
    assert run.lines == ["nothing to hash: every live file of 1 root(s) is hashed"]
