"""Reading assetd's logs back (``assetd logs``): pure functions over lines.

:func:`parse_lines` turns text lines into :class:`LogLine` values (a JSON object with an
``event``, or plain text: a traceback, systemd's own messages), :func:`matches` applies a
:class:`LogFilter`, :func:`render` formats one line for a person (aligned columns, colour on a
TTY) and :func:`follow_lines` tails a growing file. Where the lines come from (a file, stdin,
the journal) is the command's business, not this module's.

Plain-text lines are never dropped for lack of fields: they take the time of the JSON line
before them (so ``--since`` applies), pass ``--level``, and are left out only by filters that
select on fields (``--event``, ``--path``, ``--in-root``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from assetd.commands._format import printable
from assetd.paths import is_under

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_ALIASES = {"warn": "warning", "exception": "error", "fatal": "critical", "notset": "debug"}
_HEAD = ("timestamp", "level", "event", "logger", "exception")
_PATH_FIELDS = ("paths", "path", "dest", "src", "sources")
LEVEL_WIDTH = 8
EVENT_WIDTH = 26
LIST_SHOWN = 3  # items of a list (a ``paths`` sample) shown in the readable form

_RESET = "\x1b[0m"
_COLOURS = {
    "debug": "\x1b[2m",
    "info": "\x1b[32m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "critical": "\x1b[1;31m",
}
_BOLD, _DIM, _CYAN = "\x1b[1m", "\x1b[2m", "\x1b[36m"


def normalize_level(name: object) -> str | None:
    """``"WARNING"``, ``"warn"`` -> ``"warning"``; None for anything else."""
    if not isinstance(name, str):
        return None
    low = name.lower()
    low = _ALIASES.get(low, low)
    return low if low in LEVELS else None


def parse_time(value: object) -> dt.datetime | None:
    """An ISO 8601 timestamp (``...Z`` included) as an aware datetime; naive means UTC."""
    if not isinstance(value, str):
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line read back: ``data`` is its JSON object (None for a plain-text line); ``time``
    its timestamp, or for a text line the time of the last JSON line before it."""

    text: str
    data: dict[str, Any] | None
    time: dt.datetime | None

    @property
    def level(self) -> str | None:
        return normalize_level(self.data.get("level")) if self.data else None

    @property
    def event(self) -> str | None:
        event = self.data.get("event") if self.data else None
        return event if isinstance(event, str) else None


def _json_object(text: str) -> dict[str, Any] | None:
    """The log object in ``text``: the whole line, or what follows a prefix such as
    ``journalctl``'s ``May 01 10:00:00 host assetd[12]: `` (when not read with ``-o cat``)."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse: as text
        return None
    return data if isinstance(data, dict) and isinstance(data.get("event"), str) else None


def parse_lines(lines: Iterable[str]) -> Iterator[LogLine]:
    """:class:`LogLine` values for ``lines`` (trailing newlines are removed)."""
    last: dt.datetime | None = None
    for raw in lines:
        text = raw.rstrip("\r\n")
        data = _json_object(text)
        if data is not None:
            when = parse_time(data.get("timestamp"))
            last = when or last
            yield LogLine(text, data, when)
        else:
            yield LogLine(text, None, last)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What to keep: every condition given must hold (``events``: any of the globs)."""

    since: dt.datetime | None = None
    min_level: str | None = None
    events: tuple[str, ...] = ()
    path: str | None = None
    root: str | None = None
    root_path: str | None = None  # the root's directory, when known: its paths match too

    @property
    def selects_fields(self) -> bool:
        return bool(self.events or self.path or self.root)


def _paths(data: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key in _PATH_FIELDS:
        value = data.get(key)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def path_matches(candidate: str, wanted: str) -> bool:
    """``candidate`` is ``wanted``, lies below it, or matches it as a glob."""
    if any(c in wanted for c in "*?["):
        return fnmatch.fnmatchcase(candidate, wanted)
    return is_under(candidate, wanted)


def _in_root(data: dict[str, Any], name: str, root_path: str | None) -> bool:
    if data.get("root") == name:
        return True
    roots = data.get("roots")
    if isinstance(roots, list) and name in roots:
        return True
    return root_path is not None and any(path_matches(p, root_path) for p in _paths(data))


def event_matches(event: str, wanted: str) -> bool:
    """``--event``: a glob matches the whole name (``cache_state.*``); a plain word or dotted
    prefix (``batch``, ``cache_state``) also matches the events it is the first part of."""
    if any(c in wanted for c in "*?["):
        return fnmatch.fnmatchcase(event, wanted)
    return event == wanted or event.startswith(wanted + ".")


def _names_path(data: dict[str, Any], event: str, wanted: str) -> bool:
    paths = _paths(data)
    if any(path_matches(p, wanted) for p in paths):
        return True
    # a directory moved: the line names the directory, and every file below it moved too
    return event == "cache_state.moved" and any(is_under(wanted, p) for p in paths)


def matches(line: LogLine, f: LogFilter) -> bool:
    """Whether ``line`` passes ``f`` (see the module docstring for plain-text lines)."""
    if f.since is not None and line.time is not None and line.time < f.since:
        return False
    if line.data is None:
        return not f.selects_fields
    if f.min_level is not None:
        level = line.level
        if level is not None and LEVELS[level] < LEVELS[f.min_level]:
            return False
    event = line.event or ""
    if f.events and not any(event_matches(event, g) for g in f.events):
        return False
    if f.path is not None and not _names_path(line.data, event, f.path):
        return False
    return f.root is None or _in_root(line.data, f.root, f.root_path)


def _value(value: object) -> str:
    if isinstance(value, str):
        plain = value and not any(c.isspace() or c in "\"'=" for c in value)
        return value if plain else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        shown = ",".join(_value(v) for v in value[:LIST_SHOWN])
        more = f",… (+{len(value) - LIST_SHOWN})" if len(value) > LIST_SHOWN else ""
        return f"[{shown}{more}]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _paint(text: str, code: str, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour and code else text


def render(line: LogLine, *, colour: bool = False, tz: dt.tzinfo | None = None) -> str:
    """``HH:MM:SS level event key=value ...`` in local time (or ``tz``), aligned; an
    ``exception`` follows on indented lines. A plain-text line keeps its text. Control
    characters of every field are escaped visibly (``\\x1b``): a log line never drives the
    terminal."""
    when = line.time.astimezone(tz).strftime("%H:%M:%S") if line.time else " " * 8
    if line.data is None:
        return f"{_paint(when, _DIM, colour)} {'-':<{LEVEL_WIDTH}} {printable(line.text)}"
    data = line.data
    level = line.level or printable(str(data.get("level", "-")))
    event = printable(line.event or "")
    parts = [
        _paint(when, _DIM, colour),
        _paint(f"{level:<{LEVEL_WIDTH}}", _COLOURS.get(level, ""), colour),
        _paint(f"{event:<{EVENT_WIDTH}}", _BOLD, colour),
    ]
    fields = []
    logger = data.get("logger")
    if isinstance(logger, str) and not logger.startswith("assetd"):
        fields.append(_paint(f"[{printable(logger)}]", _DIM, colour))
    for key, value in data.items():
        if key not in _HEAD:
            fields.append(f"{_paint(printable(key), _CYAN, colour)}={printable(_value(value))}")
    text = " ".join(parts) + (" " + " ".join(fields) if fields else "")
    exc = data.get("exception")
    if isinstance(exc, str) and exc:
        text += "".join(f"\n    {printable(x)}" for x in exc.rstrip("\n").splitlines())
    return text.rstrip()


def day_of(line: LogLine, tz: dt.tzinfo | None = None) -> dt.date | None:
    """The local date of ``line`` (for a ``-- date --`` separator when it changes)."""
    return line.time.astimezone(tz).date() if line.time else None


def as_json(line: LogLine) -> str:
    """A matching JSON line unchanged; a plain-text line wrapped so the output stays JSON
    lines: ``{"timestamp": <the time it took>, "level": null, "event": null, "text": ...}``."""
    if line.data is not None:
        return line.text
    stamp = line.time.isoformat().replace("+00:00", "Z") if line.time else None
    return json.dumps({"timestamp": stamp, "level": None, "event": None, "text": line.text})


Wait = Callable[[float], bool]
"""Waits up to a number of seconds; returns True to stop following (``Event.wait`` fits)."""


def follow_lines(
    f: IO[str], wait: Wait, *, path: str | None = None, poll: float = 0.25
) -> Iterator[str]:
    """Lines of ``f`` as they are written, like ``tail -f``: complete lines only; starts over
    when the file is truncated, and reopens ``path`` when it is replaced (log rotation). Ends
    when ``wait`` returns True."""
    pending = ""
    reopened: IO[str] | None = None
    try:
        while True:
            chunk = f.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending
                    pending = ""
                continue
            if wait(poll):
                if pending:
                    yield pending
                return
            try:
                if os.fstat(f.fileno()).st_size < f.tell():  # truncated in place
                    f.seek(0)
                    pending = ""
                elif path is not None and os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:
                    # replaced (rotated): what was left of the old file has been read
                    if reopened is not None:
                        reopened.close()
                    f = reopened = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                    pending = ""
            except (OSError, ValueError):
                continue
    finally:
        if reopened is not None:
            reopened.close()
