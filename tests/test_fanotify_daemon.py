"""``[watch] backend``: validated in one line (exit 78), restart-only on reload, named by
``daemon.started`` and ``assetd status``; a root whose filesystem cannot use fanotify falls back
to inotify with one log line. Real daemon, real kernel (skipped where fanotify is unavailable)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetd.config import Config, WatchConfig
from assetd.live.backend import choose_backend, fanotify_unavailable
from assetd.reload import plan_reload
from cli_world import Cli, isolate, tree, write_config
from daemon_harness import Daemon
from helpers import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def test_an_unknown_backend_is_one_line_and_exit_78(cli: Cli, tmp_path: Path) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    config = write_config(
        tmp_path / "c.toml", roots={"lib": lib}, extra='[watch]\nbackend = "kqueue"\n'
    )
    run = cli("check-config", "--config", config)
    assert run.code == 78, (run.out, run.err)
    assert run.messages == [
        "assetd: config: watch.backend: must be one of auto, inotify, fanotify, got 'kqueue'"
    ]


def test_the_backend_needs_a_restart() -> None:
    old = Config()
    new = Config(watch=WatchConfig(backend="fanotify"))
    plan = plan_reload(old, new)
    assert plan.restart_needed == ["watch.backend"] and plan.applied == []


def test_inotify_is_never_probed() -> None:
    assert choose_backend("inotify", "/nonexistent") == ("inotify", None)


def test_without_the_capabilities_auto_means_inotify(tmp_path: Path) -> None:
    assert fanotify_unavailable(str(tmp_path), caps=0) == (
        "the process lacks CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH"
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "tmpfs"
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "none", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount tmpfs: {done.stderr.strip()}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def test_status_and_daemon_started_name_each_roots_backend(
    cli: Cli, tmp_path: Path, tmpfs: Path
) -> None:
    lib = tree(tmp_path / "lib", {"a.bin": b"a"})
    why = fanotify_unavailable(str(lib))
    if why is not None:
        pytest.skip(f"fanotify unavailable here: {why}")
    (tmpfs / "t.bin").write_bytes(b"t")
    on_tmpfs = "inotify" if fanotify_unavailable(str(tmpfs)) else "fanotify"
    (tmp_path / "d").mkdir()
    daemon = Daemon(tmp_path / "d", {"lib": lib, "ram": tmpfs}, backend="auto")
    try:
        daemon.start()
        started = wait_until(
            lambda: next(
                (e for e in daemon.log_events() if e.get("event") == "daemon.started"), None
            ),
            10,
            what="daemon.started",
        )
        events = daemon.log_events()
        assert started["backends"] == {"lib": "fanotify", "ram": on_tmpfs}
        fallbacks = [e for e in events if e.get("event") == "watch.fanotify_unavailable"]
        assert len(fallbacks) == (1 if on_tmpfs == "inotify" else 0)
        wait_until(lambda: daemon.is_live(tmpfs / "t.bin") and daemon.is_live(lib / "a.bin"), 15)
        (tmpfs / "u.bin").write_bytes(b"u")
        (lib / "b.bin").write_bytes(b"b")
        wait_until(lambda: daemon.is_live(tmpfs / "u.bin") and daemon.is_live(lib / "b.bin"), 5)
        run = cli("status", "--config", daemon.config)
        line = next(x for x in run.lines if x.startswith("watch:"))
        if on_tmpfs == "fanotify":
            assert line == "watch:    fanotify: lib, ram"
        else:
            assert line == "watch:    fanotify: lib; inotify: ram"
        report = json.loads(cli("status", "--json", "--config", daemon.config).out)
        assert {r["name"]: r["backend"] for r in report["roots"]} == started["backends"]
    finally:
        assert daemon.stop() == 0
        daemon.close()
    assert not any(x.startswith("watch:") for x in cli("status", "--config", daemon.config).lines)
