"""A SQLite catalog read with the standard library's ``sqlite3``, without importing SQLAlchemy
(about 0.25 s of a read-only command's start-up): ``assetd status`` on the default catalog.

Opened as :func:`assetd.catalog.engine.make_engine` opens a reader: read-only
(``mode=ro``, or ``immutable=1`` when the WAL index cannot be shared: no daemon running and no
write access), the same busy timeout, one deferred read transaction. Only the common case is
taken here: a plain ``sqlite:///PATH`` URL (:func:`~assetd.catalog.dberrors.plain_sqlite_path`)
to a catalog file that exists at the current schema revision. Anything else (PostgreSQL, a
missing catalog, another schema revision) gets None from :func:`open_sqlite_reader`, and the
caller opens the catalog the usual way, which says what is wrong as it always did. The queries
are shared with that way: plain SQL text run by :func:`assetd.catalog.sqltext.query`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator

from assetd.catalog import schema
from assetd.catalog.dberrors import (
    classify,
    corrupt_message,
    is_corrupt_driver_error,
    plain_sqlite_path,
    translated,
)
from assetd.errors import CatalogCorrupt

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for a lock (SQLite's busy timeout), here and in
:mod:`assetd.catalog.engine`."""


def _connect(path: str, flags: str, *, probe: bool = False) -> sqlite3.Connection:
    """A connection to the file with these URI ``flags``; ``probe``: read from it once, so a
    file that cannot be read this way fails here."""
    conn = sqlite3.connect(
        f"file:{path}?{flags}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if probe:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def open_sqlite_reader(url: str) -> sqlite3.Connection | None:
    """A read-only ``sqlite3`` connection to the catalog at ``url`` in an open read
    transaction, or None when this is not the common case (module docstring). Errors while
    reading it are the caller's to translate (:func:`translate_sqlite_errors`)."""
    path = plain_sqlite_path(url)
    if path is None or path == ":memory:" or not os.path.isfile(path):
        return None
    try:
        conn = _connect(path, "mode=ro", probe=True)
    except sqlite3.OperationalError:  # the WAL index cannot be shared: read the file as it is
        conn = _connect(path, "immutable=1")
    try:
        if _revision(conn) != schema.head_revision():
            conn.close()
            return None
        conn.execute("BEGIN")  # one snapshot for every query, as a Core connection's
    except BaseException:
        conn.close()
        raise
    return conn


def _revision(conn: sqlite3.Connection) -> str | None:
    found = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if not found[0]:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


@contextlib.contextmanager
def translate_sqlite_errors(url: str) -> Iterator[None]:
    """:func:`assetd.catalog.engine.translate_db_errors` for ``sqlite3``'s own errors: the same
    lines and exit codes (a locked catalog is 75, a corrupt one names ``PRAGMA
    integrity_check``)."""
    try:
        yield
    except sqlite3.Error as err:
        if isinstance(err, sqlite3.DatabaseError) and is_corrupt_driver_error(err):
            raise CatalogCorrupt(corrupt_message(url, plain_sqlite_path(url), err)) from err
        unavailable = isinstance(err, sqlite3.OperationalError)
        line = translated(url, err, classify(err, unavailable=unavailable))
        if line is None:
            raise
        raise line from err
