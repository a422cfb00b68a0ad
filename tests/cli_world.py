"""Helpers for end-to-end CLI tests: an isolated environment, ``assetd.cli.main`` run in-process
with its stdout and stderr captured, config files, and a look at the resulting catalog."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

import assetd.config
from assetd.catalog.engine import make_engine
from assetd.catalog.models import cache_states as cs
from assetd.cli import main
from assetd.log import reset_logging


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No real config is found and state goes below tmp_path; returns $XDG_STATE_HOME."""
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_STATE_HOME", str(xdg))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASSETD_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setattr(assetd.config, "SYSTEM_CONFIG_PATH", str(tmp_path / "none" / "c.toml"))
    return xdg


def subprocess_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a subprocess, isolated as :func:`isolate` does in-process."""
    env = {k: v for k, v in os.environ.items() if k not in ("ASSETD_CONFIG", "STATE_DIRECTORY")}
    env.update(XDG_STATE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = str(Path(assetd.__file__).parent.parent)
    return env


def is_log_line(line: str) -> bool:
    """A structlog JSON line (logs go to stderr; JSON when stderr is not a TTY)."""
    if not line.startswith("{"):
        return False
    try:
        return "event" in json.loads(line)
    except ValueError:
        return False


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def messages(self) -> list[str]:
        """stderr without the log lines: what the CLI itself said."""
        return [line for line in self.err.splitlines() if not is_log_line(line)]

    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


class Cli:
    """``assetd ARGS`` in-process: ``cli("scan", "--root", d)`` returns a :class:`Run`."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str | Path) -> Run:
        self.capsys.readouterr()
        try:
            code = main([str(a) for a in argv])
        finally:
            reset_logging()  # main() configured logging onto the captured stderr
        out, err = self.capsys.readouterr()
        return Run(code, out, err)


def write_config(
    path: Path,
    *,
    roots: dict[str, Path],
    state_dir: Path | None = None,
    url: str = "",
    host: str = "",
    root_extra: str = "",
    extra: str = "",
) -> Path:
    """A TOML config: ``[daemon]``, ``[database]``, one ``[[roots]]`` per entry, then ``extra``.

    ``root_extra`` is added to every root table (e.g. ``follow_symlinks = true``)."""
    q = json.dumps  # a TOML basic string is a JSON string for these values
    text = "[daemon]\n"
    if host:
        text += f"host = {q(host)}\n"
    if state_dir is not None:
        text += f"state_dir = {q(str(state_dir))}\n"
    if url:
        text += f"[database]\nurl = {q(url)}\n"
    for name, root in roots.items():
        text += f"[[roots]]\nname = {q(name)}\npath = {q(str(root))}\n{root_extra}\n"
    path.write_text(text + extra, encoding="utf-8")
    return path


def catalog_rows(url: str) -> dict[str, dict[str, object]]:
    """Every cache state of the catalog at ``url``, by file_path."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(cs)).mappings().all()
    finally:
        engine.dispose()
    return {str(r["file_path"]): dict(r) for r in rows}


def sqlite_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'catalog.db'}"


def tree(top: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> content) below ``top``; return ``top``."""
    for rel, data in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    top.mkdir(parents=True, exist_ok=True)
    return top
