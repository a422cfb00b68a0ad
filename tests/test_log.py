"""assetd.log: JSON lines (structlog and stdlib alike), console text, levels, idempotence."""

from __future__ import annotations

import io
import json
import logging
import re
import warnings
from typing import Any

import pytest

from assetd.log import configure_logging, get_logger, sample_paths

log = get_logger(__name__)  # bound before configure_logging, as modules do at import time


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the stream, each parsed as one JSON object (fails on any other line)."""
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_carry_level_event_timestamp_and_fields(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    log.info("cache_state.missing", count=3, paths=["/a", "/b", "/c"], duration_s=0.25)
    log.warning("root.unavailable", root="models")

    first, second = lines(stream)
    assert list(first)[:4] == ["timestamp", "level", "event", "logger"]
    assert first["level"] == "info"
    assert first["event"] == "cache_state.missing"
    assert first["logger"] == __name__
    assert (first["count"], first["paths"], first["duration_s"]) == (3, ["/a", "/b", "/c"], 0.25)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", first["timestamp"])
    assert (second["level"], second["event"], second["root"]) == (
        "warning",
        "root.unavailable",
        "models",
    )


def test_stdlib_loggers_come_out_as_json(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    logging.getLogger("watchdog").warning("inotify queue %s", "overflowed")
    logging.getLogger("watchdog.observers").info("held at WARNING: not shown")
    logging.getLogger("sqlalchemy.engine").info("held at WARNING: not shown")
    logging.getLogger("alembic.runtime").info("held at WARNING: not shown")
    logging.getLogger("someone.else").info("shown at the root's level")

    records = lines(stream)
    assert [(r["logger"], r["level"], r["event"]) for r in records] == [
        ("watchdog", "warning", "inotify queue overflowed"),
        ("someone.else", "info", "shown at the root's level"),
    ]
    assert all("timestamp" in r for r in records)


def test_python_warnings_come_out_as_json(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    (record,) = lines(stream)
    assert record["logger"] == "py.warnings"
    assert "deprecated thing" in record["event"]


def test_exception_stays_one_json_line(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("batch.failed", count=2)
    try:
        raise OSError("disk gone")
    except OSError:
        logging.getLogger("sqlalchemy.pool").exception("pool error")

    ours, foreign = lines(stream)
    assert (ours["event"], ours["level"], ours["count"]) == ("batch.failed", "error", 2)
    assert ours["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad\nvalue" in ours["exception"]
    assert "exc_info" not in ours
    assert foreign["logger"] == "sqlalchemy.pool"
    assert "OSError: disk gone" in foreign["exception"]


def test_configure_twice_does_not_duplicate(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    configure_logging("json", "info", stream)
    log.info("once")
    logging.getLogger("watchdog").error("once too")
    assert [r["event"] for r in lines(stream)] == ["once", "once too"]


def test_reconfigure_moves_to_the_new_stream(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    other = io.StringIO()
    configure_logging("json", "info", other)
    log.info("moved")
    assert stream.getvalue() == ""
    assert [r["event"] for r in lines(other)] == ["moved"]


def test_levels(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    log.debug("hidden", path="/a")
    logging.getLogger("assetd.live.worker").debug("hidden too")
    log.info("shown")
    assert [r["event"] for r in lines(stream)] == ["shown"]

    debug = io.StringIO()
    configure_logging("json", "debug", debug)
    log.debug("per.path", path="/a")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade")
    logging.getLogger("sqlalchemy.engine").info("held at WARNING even at debug")
    assert [r["event"] for r in lines(debug)] == ["per.path", "Running upgrade"]

    errors = io.StringIO()
    configure_logging("json", "error", errors)
    log.warning("hidden")
    logging.getLogger("watchdog").warning("hidden")
    log.error("shown")
    assert [r["event"] for r in lines(errors)] == ["shown"]


def test_console_is_readable_text(stream: io.StringIO) -> None:
    configure_logging("console", "info", stream)
    log.info("batch.applied", count=7)
    logging.getLogger("watchdog").warning("from the stdlib")
    text = stream.getvalue()
    assert "batch.applied" in text and "count=7" in text and "from the stdlib" in text
    assert "\x1b[" not in text  # not a TTY: no colours
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_auto_is_json_off_a_tty_and_console_on_one(stream: io.StringIO) -> None:
    configure_logging("auto", "info", stream)
    log.info("auto.json")
    assert lines(stream)[0]["event"] == "auto.json"

    class TTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = TTY()
    configure_logging("auto", "info", tty)
    log.info("auto.console")
    assert "auto.console" in tty.getvalue()
    assert "\x1b[" in tty.getvalue()  # colours on a TTY
    with pytest.raises(json.JSONDecodeError):
        json.loads(tty.getvalue().splitlines()[0])


def test_default_stream_is_stderr_at_call_time(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    log.info("to.stderr")
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err.splitlines()[-1])["event"] == "to.stderr"


def test_get_logger_without_a_name_uses_the_callers_module(stream: io.StringIO) -> None:
    configure_logging("json", "info", stream)
    get_logger().info("named")
    assert lines(stream)[0]["logger"] == __name__


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="format"):
        configure_logging("xml")
    with pytest.raises(ValueError, match="level"):
        configure_logging("json", "verbose")


def test_sample_paths() -> None:
    many = [f"/r/{i}" for i in range(100_000)]
    assert sample_paths(many) == many[:20]
    assert sample_paths(iter(many), limit=3) == ["/r/0", "/r/1", "/r/2"]
    assert sample_paths(["/one"]) == ["/one"]
    assert sample_paths([]) == []
