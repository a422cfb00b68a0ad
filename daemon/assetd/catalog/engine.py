"""Engine and session set-up for SQLite (WAL, busy timeout, foreign keys) and PostgreSQL.

The only dialect-aware module besides the upsert helpers: everything else is engine-neutral.
Core only at import: the session factory imports ``sqlalchemy.orm`` when it is first asked for,
so the read-only commands (which query with Core connections) never load the ORM.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from assetd.catalog import dberrors
from assetd.catalog.dberrors import classify, is_corrupt_driver_error, translated
from assetd.catalog.dberrors import describe_url as describe_url  # re-exported
from assetd.catalog.dberrors import one_line as one_line  # re-exported
from assetd.catalog.lite import BUSY_TIMEOUT_MS as BUSY_TIMEOUT_MS  # shared with lite
from assetd.errors import (
    CatalogCorrupt,
    CatalogMissing,
    ConfigError,
    DatabaseLocked,
    DatabaseUnavailable,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    SessionFactory: TypeAlias = sessionmaker[Session]
else:

    def __getattr__(name: str) -> Any:
        """``SessionFactory`` (imported by name by the writers) costs the ORM's import: made
        when first asked for (PEP 562), not when this module loads."""
        if name == "SessionFactory":
            from sqlalchemy.orm import Session, sessionmaker

            return sessionmaker[Session]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


DB_FILE_MODE = 0o640
DB_DIR_MODE = 0o750


def sqlite_path(url: str | URL) -> str | None:
    """The file of a SQLite URL, or None for another engine or an in-memory database."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return u.database


def _prepare_sqlite_file(path: str) -> None:
    """Create the catalog's directory (0750) and file (0640) so they are never world-readable.

    SQLite creates ``-wal`` and ``-shm`` with the database file's permissions.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=DB_DIR_MODE, exist_ok=True)
    if not os.path.exists(path):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
        except FileExistsError:  # another process (a scan started with this one) made it
            return
        os.close(fd)
        os.chmod(path, DB_FILE_MODE)  # the umask may have taken bits away; never added any


def _journal_mode_wal(cur: sqlite3.Cursor) -> None:
    """``PRAGMA journal_mode = WAL``, retried while the file is locked: on a fresh catalog the
    switch needs it unlocked, and SQLite returns ``database is locked`` there at once instead
    of calling the busy handler (another process creating the schema). Within the busy timeout;
    once the file is in WAL mode the pragma only reads it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _sqlite_engine(path: str, *, readonly: bool, immutable: bool = False) -> Engine:
    if readonly:
        flags = "immutable=1" if immutable else "mode=ro"
        url = f"sqlite:///file:{path}?{flags}&uri=true"
    else:
        _prepare_sqlite_file(path)
        url = f"sqlite:///{path}"
    engine = create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, hide_parameters=True
    )
    begin_sql = "BEGIN" if readonly else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            _journal_mode_wal(cur)
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    if not readonly:

        @event.listens_for(engine, "handle_error")
        def _on_error(ctx: Any) -> None:
            # A connection opened while the file could not be written stays read-only for
            # good: drop it, so the pool opens a writable one once the file is writable again.
            if "readonly database" in str(ctx.original_exception):
                ctx.is_disconnect = True

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the write lock up front: a deferred transaction that upgrades later
        # gets SQLITE_BUSY without waiting when another writer committed meanwhile.
        conn.exec_driver_sql(begin_sql)

    return engine


def make_engine(url: str, *, readonly: bool = False, pool_size: int = 5) -> Engine:
    """An engine for the catalog at ``url``.

    ``readonly`` opens a SQLite file read-only (``mode=ro``); a reader that cannot share the
    WAL index (no daemon running, no write access) falls back to ``immutable=1``.
    """
    path = sqlite_path(url)
    if path is not None:
        if readonly:
            if not os.path.exists(path):
                raise CatalogMissing(
                    f"no catalog at {path} yet: run `assetd scan` (or `assetd run`) first"
                )
            engine = _sqlite_engine(path, readonly=True)
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
            except exc.OperationalError:
                engine.dispose()
                engine = _sqlite_engine(path, readonly=True, immutable=True)
            return engine
        try:
            return _sqlite_engine(path, readonly=False)
        except OSError as err:  # the configured catalog path cannot be used: exit 78
            raise ConfigError(
                "database.url", f"cannot create the catalog at {path}: {err.strerror or err}"
            ) from None
    u = make_url(url)
    if u.get_backend_name() == "sqlite":  # in-memory: tests only
        return create_engine(url)
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    if readonly:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return create_engine(
        u,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args=connect_args,
    )


def session_factory(engine: Engine) -> SessionFactory:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)


def classify_db_error(
    err: BaseException,
) -> type[DatabaseLocked] | type[DatabaseUnavailable] | None:
    """Map a driver error onto the exit-code classes of DESIGN §6, or None if it is not one."""
    if not isinstance(err, exc.DBAPIError):
        return None
    unavailable = isinstance(err, exc.OperationalError) or err.connection_invalidated
    return classify(err.orig if err.orig is not None else err, unavailable=unavailable)


def is_corrupt(err: BaseException) -> bool:
    """The database's file (or a PostgreSQL relation) is damaged: SQLite's NOTADB and CORRUPT."""
    if not isinstance(err, exc.DatabaseError):
        return False
    return is_corrupt_driver_error(err.orig if err.orig is not None else err)


def corrupt_message(url: str | URL, err: BaseException) -> str:
    """One line: the catalog is corrupt, how to check it, and to restore a backup."""
    return dberrors.corrupt_message(url, sqlite_path(url), err)


@contextlib.contextmanager
def translate_db_errors(url: str | URL) -> Iterator[None]:
    """Turn driver errors into CatalogCorrupt / DatabaseLocked / DatabaseUnavailable with one
    readable line."""
    try:
        yield
    except exc.DBAPIError as err:
        if is_corrupt(err):
            raise CatalogCorrupt(corrupt_message(url, err)) from err
        line = translated(url, err, classify_db_error(err))
        if line is None:
            raise
        raise line from err


PING_TIMEOUT_S = 3


def ping_server(url: str) -> None:
    """Connect to a database server once (``SELECT 1``, a short connect timeout) and close:
    ``check-config``'s look. DatabaseUnavailable (one line) when it cannot be reached."""
    engine = create_engine(
        make_url(url),
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={"connect_timeout": PING_TIMEOUT_S},
    )
    try:
        with translate_db_errors(url), engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
