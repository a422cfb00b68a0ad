"""A database error as one readable line with its DESIGN §6 exit code, and the catalog URL as
messages show it: for SQLAlchemy's errors (:func:`assetd.catalog.engine.translate_db_errors`)
and for the standard library's ``sqlite3`` ones (:mod:`assetd.catalog.lite`, which ``status``
reads a SQLite catalog with).

Light on purpose: SQLAlchemy is imported only to render a URL that is not a plain SQLite file
path, so a command that reads SQLite through ``sqlite3`` never loads it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from assetd.errors import AssetdError, DatabaseLocked, DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_PLAIN_SQLITE = re.compile(r"sqlite:///([A-Za-z0-9+\-./_~ ]+)")
"""A SQLite URL whose path SQLAlchemy neither unquotes nor renders quoted."""


def plain_sqlite_path(url: str) -> str | None:
    """The file of ``sqlite:///PATH`` when PATH holds only characters a URL leaves as they are
    (letters, digits, ``+-./_~`` and space), else None (another engine, a query string, a
    character SQLAlchemy would quote: ask :func:`assetd.catalog.engine.sqlite_path`)."""
    found = _PLAIN_SQLITE.fullmatch(url)
    return found.group(1) if found else None


def describe_url(url: str | URL) -> str:
    """The URL with any password hidden, for messages and logs."""
    if isinstance(url, str) and plain_sqlite_path(url) is not None:
        return url  # what SQLAlchemy renders it as, without importing it
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def one_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def classify(
    driver_error: BaseException, *, unavailable: bool
) -> type[DatabaseLocked] | type[DatabaseUnavailable] | None:
    """The exit-code class of DESIGN §6 for the driver's error, or None if it is not one.
    ``unavailable``: an operational error (or a connection lost), which is one whatever it says."""
    text = str(driver_error).lower()
    if "locked" in text or "busy" in text:
        return DatabaseLocked
    if unavailable:
        return DatabaseUnavailable
    if "readonly" in text or "read-only" in text or "read only" in text:
        return DatabaseUnavailable
    return None


_CORRUPT_TEXT = ("file is not a database", "disk image is malformed", "database corruption")
_CORRUPT_SQLSTATE = ("XX001", "XX002")  # PostgreSQL: data_corrupted, index_corrupted


def is_corrupt_driver_error(driver_error: BaseException) -> bool:
    """The driver says the database is damaged: SQLite's NOTADB and CORRUPT, PostgreSQL's
    data_corrupted and index_corrupted."""
    if getattr(driver_error, "sqlstate", None) in _CORRUPT_SQLSTATE:
        return True
    text = str(driver_error).lower()
    return any(marker in text for marker in _CORRUPT_TEXT)


def corrupt_message(url: str | URL, sqlite_file: str | None, err: BaseException) -> str:
    """One line: the catalog is corrupt, how to check it, and to restore a backup."""
    if sqlite_file is None:
        return (
            f"the catalog database {describe_url(url)} reports corruption ({one_line(err)}): "
            "check the server's logs and restore a backup (docs/operations.md, "
            '"A corrupt catalog")'
        )
    return (
        f"the catalog {sqlite_file} is corrupt ({one_line(err)}): check it with "
        f"`sqlite3 {sqlite_file} 'PRAGMA integrity_check'`, then restore a backup "
        '(docs/operations.md, "A corrupt catalog")'
    )


def translated(
    url: str | URL,
    err: BaseException,
    kind: type[DatabaseLocked] | type[DatabaseUnavailable] | None,
) -> AssetdError | None:
    """The one-line error for ``err`` of class ``kind`` (:func:`classify`), None for none."""
    if kind is None:
        return None
    where = describe_url(url)
    if kind is DatabaseLocked:
        return DatabaseLocked(f"catalog is locked by another writer ({where}): {one_line(err)}")
    return DatabaseUnavailable(f"database unavailable ({where}): {one_line(err)}")


__all__ = [
    "classify",
    "corrupt_message",
    "describe_url",
    "is_corrupt_driver_error",
    "one_line",
    "plain_sqlite_path",
    "translated",
]
