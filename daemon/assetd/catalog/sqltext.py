"""Read queries written once as portable SQL text, run on whichever connection a command has.

The queries behind ``assetd status`` (:mod:`assetd.catalog.overview`,
:mod:`assetd.catalog.backlog`) are plain SQL with ``:name`` parameters that SQLite and
PostgreSQL read alike (``= true``/``= false`` for the flags, no dialect function). :func:`query`
runs one on the standard library's ``sqlite3`` connection (:mod:`assetd.catalog.lite`: a SQLite
catalog read without importing SQLAlchemy) or on a SQLAlchemy connection or session (``text()``:
PostgreSQL, and the daemon's own sessions). A list parameter stands for ``IN (...)``: write
``x IN :ids`` and pass a list.

Values come back as the driver gives them: timestamps are SQLite's text or PostgreSQL's
``datetime``, made timezone-aware UTC by :func:`utc` (what the ``UTCDateTime`` column type does
for a Core query); flags are 0/1 on SQLite (``bool()`` them).
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

TextReader: TypeAlias = "sqlite3.Connection | Connection | Session"
"""What :func:`query` runs on."""

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def is_sqlite(reader: TextReader) -> bool:
    """Whether ``reader`` reads a SQLite catalog (through ``sqlite3`` or SQLAlchemy)."""
    if isinstance(reader, sqlite3.Connection):
        return True
    dialect = getattr(reader, "dialect", None) or reader.get_bind().dialect  # type: ignore[union-attr]
    return bool(dialect.name == "sqlite")


def _expand(sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Each list or tuple parameter ``:ids`` becomes ``(:ids_0, :ids_1, ...)`` (``(NULL)`` for
    an empty one: nothing is in it, on both engines)."""
    out = {k: v for k, v in params.items() if not isinstance(v, list | tuple)}

    def one(found: re.Match[str]) -> str:
        name = found.group(1)
        value = params.get(name)
        if not isinstance(value, list | tuple):
            return found.group(0)
        names = [f"{name}_{i}" for i in range(len(value))]
        out.update(zip(names, value, strict=True))
        return "(" + ", ".join(f":{n}" for n in names) + ")" if names else "(NULL)"

    return _PARAM.sub(one, sql), out


def query(reader: TextReader, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (with ``:name`` parameters) run on ``reader``."""
    sql, values = _expand(sql, params)
    if isinstance(reader, sqlite3.Connection):
        return reader.execute(sql, values).fetchall()
    from sqlalchemy import text  # (loaded already: the caller has a connection)

    return [tuple(row) for row in reader.execute(text(sql), values)]


def utc(value: Any) -> dt.datetime | None:
    """A timestamp as a driver returns it (SQLite's ISO text, a naive or aware ``datetime``)
    as a timezone-aware UTC ``datetime``; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite stores naive UTC as ISO text
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
    return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def normalize_prefix(prefix: str) -> str:
    """A directory prefix without a trailing slash ("/" stays "/")."""
    stripped = prefix.rstrip("/")
    return stripped or "/"


def prefix_range(prefix: str) -> tuple[str, str]:
    """``(lo, hi)``: the paths strictly below directory ``prefix`` are ``lo <= path < hi``, an
    index-friendly key range. Paths compare byte-wise on both engines, and "/" + 1 == "0", so
    every path below ``d`` lies in ``['d/', 'd0')``; below "/", every path (all start with "/")."""
    p = normalize_prefix(prefix)
    return ("/", "0") if p == "/" else (p + "/", p + "0")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rows_as(names: Sequence[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows as dicts keyed by ``names`` (the columns the SQL selects, in order)."""
    return [dict(zip(names, row, strict=True)) for row in rows]
