"""``assetd logs``: the pure line functions of assetd.commands.logview, then the command on a
recorded daemon log (tests/data/assetd-recorded.log: a real `assetd run` session with a systemd
line, a watchdog line and a Python traceback added), on stdin and on a stand-in ``journalctl``."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetd.commands import logview
from assetd.commands.logview import LogFilter, LogLine, matches, parse_lines, render
from cli_world import Cli, isolate, write_config

RECORDED = Path(__file__).with_name("data") / "assetd-recorded.log"
UTC = dt.UTC


def line(**fields: object) -> str:
    return json.dumps({"timestamp": "2024-05-01T10:00:00Z", "level": "info", **fields})


def one(text: str) -> LogLine:
    [parsed] = parse_lines([text])
    return parsed


# --- parse ----------------------------------------------------------------------------------


def test_parse_json_text_and_prefixed_lines() -> None:
    lines = [
        line(event="a.b", count=1) + "\n",
        "Traceback (most recent call last):\n",
        'May 01 10:00:05 nas assetd[12]: {"timestamp": "2024-05-01T10:00:05Z", "level": '
        '"WARNING", "event": "root.unavailable", "root": "m"}\n',
        '{"no": "event"}\n',
    ]
    a, text, prefixed, other = parse_lines(lines)
    assert a.event == "a.b" and a.level == "info" and a.data is not None
    assert a.time == dt.datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert text.data is None and text.text == "Traceback (most recent call last):"
    assert text.time == a.time  # a text line takes the time of the line before it
    assert prefixed.event == "root.unavailable" and prefixed.level == "warning"
    assert other.data is None and other.time == prefixed.time


# --- filter ---------------------------------------------------------------------------------


def test_level_event_and_since_filters() -> None:
    info = one(line(event="cache_state.missing"))
    warn = one(line(event="root.unavailable", level="warning"))
    text = LogLine("a traceback", None, info.time)
    assert not matches(info, LogFilter(min_level="warning"))
    assert matches(warn, LogFilter(min_level="warning"))
    assert matches(warn, LogFilter(min_level="info"))
    assert matches(text, LogFilter(min_level="error"))  # text has no level: shown
    glob = LogFilter(events=("cache_state.*",))
    assert matches(info, glob) and not matches(warn, glob) and not matches(text, glob)
    assert matches(warn, LogFilter(events=("nope", "root.*")))
    later = LogFilter(since=dt.datetime(2024, 5, 1, 10, 0, 1, tzinfo=UTC))
    assert not matches(info, later) and not matches(text, later)
    assert matches(info, LogFilter(since=dt.datetime(2024, 5, 1, 9, tzinfo=UTC)))


def test_path_filter_matches_the_paths_sample_a_directory_or_a_glob() -> None:
    batch = one(line(event="cache_state.missing", count=30, paths=["/lib/a.bin", "/lib/d/b c"]))
    single = one(line(event="root.unavailable", root="lib", path="/lib"))
    assert matches(batch, LogFilter(path="/lib/a.bin"))
    assert matches(batch, LogFilter(path="/lib/d"))  # below a directory
    assert matches(batch, LogFilter(path="/lib/d/"))
    assert not matches(batch, LogFilter(path="/lib/d/b"))  # not a prefix of a name
    assert matches(batch, LogFilter(path="*.bin"))
    assert not matches(batch, LogFilter(path="/other"))
    assert matches(single, LogFilter(path="/lib"))
    assert not matches(LogLine("plain", None, None), LogFilter(path="/lib"))


def test_path_filter_finds_the_move_of_a_directory_above_the_path() -> None:
    moved = one(line(event="cache_state.moved", count=1, paths=["/lib/new"], sources=["/lib/old"]))
    assert matches(moved, LogFilter(path="/lib/old/sub/a.bin"))  # a file that moved with it
    assert matches(moved, LogFilter(path="/lib/new/sub/a.bin"))
    assert not matches(moved, LogFilter(path="/lib/older/a.bin"))
    missing = one(line(event="cache_state.missing", count=1, paths=["/lib/old"]))
    assert not matches(missing, LogFilter(path="/lib/old/sub/a.bin"))  # only moves carry files


def test_root_filter_by_name_roots_list_or_path() -> None:
    named = one(line(event="watch.started", root="media", path="/srv/media"))
    listed = one(line(event="daemon.started", roots=["models", "media"]))
    by_path = one(line(event="cache_state.missing", paths=["/srv/media/x.png"]))
    other = one(line(event="watch.started", root="models", path="/srv/models"))
    f = LogFilter(root="media", root_path="/srv/media")
    assert [matches(x, f) for x in (named, listed, by_path, other)] == [True, True, True, False]
    assert not matches(by_path, LogFilter(root="media"))  # its path unknown: by name only


# --- render ---------------------------------------------------------------------------------


def test_render_is_aligned_and_plain_without_colour() -> None:
    a = one(line(event="cache_state.missing", count=5, paths=["/a", "/b c", "/c", "/d", "/e"]))
    b = one(line(event="root.unavailable", level="warning", root="m", missing=2))
    ra, rb = render(a, tz=UTC), render(b, tz=UTC)
    assert ra == (
        '10:00:00 info     cache_state.missing        count=5 paths=[/a,"/b c",/c,… (+2)]'
    )
    assert rb.startswith("10:00:00 warning  root.unavailable           root=m missing=2")
    assert ra.index("count=") == rb.index("root=")  # the fields start in one column
    assert "\x1b[" not in ra
    assert "\x1b[33m" in render(b, colour=True, tz=UTC)  # warning in yellow
    text = render(LogLine("Traceback (most recent call last):", None, a.time), tz=UTC)
    assert text == "10:00:00 -        Traceback (most recent call last):"


def test_render_shows_a_foreign_logger_and_an_exception_below() -> None:
    rec = one(
        line(
            event="watch.handler_error",
            level="error",
            logger="watchdog.observers",
            exception="Traceback:\n  File x\nValueError: boom",
        )
    )
    first, *rest = render(rec, tz=UTC).splitlines()
    assert first.endswith("[watchdog.observers]")
    assert rest == ["    Traceback:", "      File x", "    ValueError: boom"]


def test_as_json_passes_json_through_and_wraps_text() -> None:
    raw = line(event="x.y", paths=["/a"])
    assert logview.as_json(one(raw)) == raw
    wrapped = json.loads(logview.as_json(LogLine("plain", None, one(raw).time)))
    assert wrapped == {"timestamp": "2024-05-01T10:00:00Z", "level": None, "event": None,
                       "text": "plain"}  # fmt: skip


# --- follow ---------------------------------------------------------------------------------


def test_follow_yields_complete_lines_as_written_and_survives_truncation(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("one\n")
    script = iter(
        [
            lambda: path.open("a").write("tw"),  # half a line: held back
            lambda: path.open("a").write("o\n"),
            lambda: path.write_text("3\n"),  # truncated and rewritten
            None,  # stop
        ]
    )

    def wait(_timeout: float) -> bool:
        step = next(script)
        if step is None:
            return True
        step()
        return False

    with path.open() as f:
        got = list(logview.follow_lines(f, wait, path=str(path)))
    assert got == ["one\n", "two\n", "3\n"]


def test_follow_reopens_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("old\n")
    steps = iter(
        [
            lambda: (path.rename(tmp_path / "a.log.1"), path.write_text("new\n")),
            None,
        ]
    )

    def wait(_timeout: float) -> bool:
        step = next(steps, None)
        if step is None:
            return True
        step()
        return False

    with path.open() as f:
        assert list(logview.follow_lines(f, wait, path=str(path))) == ["old\n", "new\n"]


# --- the command ----------------------------------------------------------------------------


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC (rendered times and journalctl's --since are local)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, utc: None
) -> Cli:
    isolate(monkeypatch, tmp_path)
    return Cli(capsys)


def events(out: str) -> list[str]:
    """The event column of ``assetd logs`` output ("-" for a text line, none for headers)."""
    rows = [r for r in out.splitlines() if r and not r.startswith(("--", " "))]
    return [r.split()[2] if r.split()[1] != "-" else "-" for r in rows]


def test_logs_of_a_recorded_file_show_every_line(cli: Cli) -> None:
    run = cli("logs", RECORDED)
    assert run.code == 0, run.err
    recorded = RECORDED.read_text().splitlines()
    rows = run.lines
    assert rows[0] == "         -        Started assetd.service - assetd asset catalog daemon."
    assert rows[1] == "-- 2026-11-25 --"
    assert len(rows) == len(recorded) + 1  # nothing dropped, one date header
    assert "OSError: [Errno 5] Input/output error" in run.out
    assert any(
        r.startswith("22:49:40 info     cache_state.missing        count=1 paths=[/srv/models/b")
        for r in rows
    )


def test_logs_level_event_path_and_root_filters(cli: Cli, tmp_path: Path) -> None:
    warn = events(cli("logs", RECORDED, "--level", "WARNING").out)
    assert "-" in warn  # the traceback lines, which have no level, stay
    assert {e for e in warn if e != "-"} == {"root.unavailable", "Inotify", "reconcile.failed"}
    assert events(cli("logs", RECORDED, "--level", "error").out).count("reconcile.failed") == 1

    assert events(cli("logs", RECORDED, "--event", "cache_state.*").out) == [
        "cache_state.missing",
        "cache_state.moved",
        "cache_state.missing",
    ]
    both = events(cli("logs", RECORDED, "--event", "root.*", "--event", "daemon.st*").out)
    assert both == [
        "daemon.started",
        "root.unavailable",
        "root.restored",
        "daemon.stopping",
        "daemon.stopped",
    ]
    assert events(cli("logs", RECORDED, "--path", "/srv/models/b.ckpt").out) == [
        "cache_state.missing"
    ]
    assert events(cli("logs", RECORDED, "--path", "/srv/media/f4.png").out) == [
        "cache_state.missing"
    ]
    # 25 files went, the line names 20 (sorted): f7 is in the count, not in the sample
    assert events(cli("logs", RECORDED, "--path", "/srv/media/f7.png").out) == []

    config = write_config(tmp_path / "c.toml", roots={"media": Path("/srv/media")})
    media = events(cli("logs", RECORDED, "--in-root", "media", "--config", config).out)
    assert media == [
        "watch.started",
        "daemon.started",
        "reconcile.started",
        "cache_state.missing",
        "root.unavailable",
        "watch.started",
        "reconcile.started",
        "root.restored",
    ]


def test_logs_since_an_iso_time_or_a_duration(cli: Cli, tmp_path: Path) -> None:
    late = events(cli("logs", RECORDED, "--since", "2026-11-25T22:49:45.37Z").out)
    assert late == ["reconcile.finished", "daemon.stopping", "daemon.stopped"]
    now = dt.datetime.now(UTC)
    log = tmp_path / "recent.log"
    log.write_text(
        "\n".join(
            json.dumps({"timestamp": (now - age).isoformat(), "level": "info", "event": name})
            for name, age in (("old.one", dt.timedelta(hours=2)), ("new.one", dt.timedelta(0)))
        )
        + "\n"
    )
    assert events(cli("logs", log, "--since", "1h").out) == ["new.one"]
    assert cli("logs", log, "--since", "yesterday-ish").code == 2


def test_logs_json_passes_matching_lines_through_unchanged(cli: Cli) -> None:
    run = cli("logs", RECORDED, "--json", "--event", "root.*")
    recorded = [r for r in RECORDED.read_text().splitlines() if '"event": "root.' in r]
    assert run.lines == recorded
    everything = cli("logs", RECORDED, "--json").lines
    assert len(everything) == len(RECORDED.read_text().splitlines())
    text = [json.loads(r) for r in everything if '"text"' in r]
    assert [t["text"] for t in text][:2] == [
        "Started assetd.service - assetd asset catalog daemon.",
        "Traceback (most recent call last):",
    ]


def test_logs_from_stdin(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(RECORDED.read_text()))
    run = cli("logs", "-", "--event", "watch.*")
    assert run.code == 0, run.err
    assert events(run.out) == ["watch.started"] * 3


def test_logs_colour_only_when_asked_or_on_a_tty(cli: Cli) -> None:
    assert "\x1b[" not in cli("logs", RECORDED).out  # captured stdout is not a TTY
    assert "\x1b[33m" in cli("logs", RECORDED, "--color", "always").out


def test_logs_reads_the_journal_when_no_file_is_given(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "journalctl"
    argv_file = tmp_path / "argv"
    fake.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {argv_file}\ncat {RECORDED}\n", encoding="utf-8"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    run = cli("logs", "--event", "daemon.*", "--since", "2026-11-25T22:00:00Z")
    assert run.code == 0, run.err
    assert events(run.out) == ["daemon.started", "daemon.stopping", "daemon.stopped"]
    assert argv_file.read_text().splitlines() == [
        "-u",
        "assetd",
        "-o",
        "cat",
        "--no-pager",
        "--since",
        "2026-11-25 22:00:00",  # local time (TZ=UTC here)
    ]
    assert cli("logs", "--user", "--unit", "other").code == 0
    assert argv_file.read_text().splitlines()[:3] == ["--user", "-u", "other"]


def test_logs_without_a_file_or_journalctl_is_a_usage_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    run = cli("logs")
    assert run.code == 2
    assert "journalctl is not available" in run.err and "- to read stdin" in run.err
    missing = cli("logs", tmp_path / "nope.log")
    assert missing.code == 1 and "cannot read" in missing.err
