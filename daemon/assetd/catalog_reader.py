"""The catalog as ``assetd status`` reads it: a SQLite catalog through the standard library's
``sqlite3`` (:mod:`assetd.catalog.lite`: no SQLAlchemy to import), anything else through a
SQLAlchemy Core connection (:func:`assetd.catalog_access.catalog`). Either way the same SQL text
runs on it (:mod:`assetd.catalog.sqltext`), and a database error is the same one line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from assetd.catalog.lite import open_sqlite_reader, translate_sqlite_errors
from assetd.catalog.sqltext import TextReader
from assetd.config import Config
from assetd.statedir import read_host_id


@dataclass(frozen=True, slots=True)
class ReadCatalog:
    """An open catalog to read: what runs the queries, this host's id, the catalog's URL."""

    reader: TextReader
    host: str
    url: str


@contextlib.contextmanager
def read_catalog(config: Config) -> Iterator[ReadCatalog]:
    """The catalog, read-only, with the schema checked, in one read transaction; database
    errors in the ``with`` body become one line with their exit code (DESIGN §6)."""
    url = config.database_url
    with translate_sqlite_errors(url):
        conn = open_sqlite_reader(url)
    if conn is None:  # PostgreSQL, or not the common case: SQLAlchemy says what is wrong
        from assetd.catalog.engine import translate_db_errors
        from assetd.catalog_access import catalog

        with catalog(config, write=False) as cat, translate_db_errors(url), cat.connect() as c:
            yield ReadCatalog(c, cat.host, url)
        return
    try:
        host = read_host_id(config)
        with translate_sqlite_errors(url):
            yield ReadCatalog(conn, host, url)
    finally:
        conn.close()
