"""Small engine-neutral SQL helpers: chunking below the bound-parameter limit, prefix ranges,
id allocation and driver-level bulk statements (the only dialect-specific SQL)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CursorResult,
    Integer,
    LargeBinary,
    Table,
    and_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.exc import DBAPIError

from assetd.catalog.sqltext import normalize_prefix as normalize_prefix  # re-exported
from assetd.catalog.sqltext import prefix_range
from assetd.catalog.tables import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

Reader: TypeAlias = "Connection | Session"
"""What a read query runs on: a Core connection (the read-only commands, which do not import
the ORM) or a session (the daemon, the API)."""

T = TypeVar("T")

# SQLite >= 3.32 allows 32,766 bound parameters per statement (999 before); PostgreSQL 65,535.
_SQLITE_LIMIT = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
CHUNK = min(10_000, _SQLITE_LIMIT - 100)  # room for the other parameters of a statement
PG_CHUNK = 200_000  # values per array parameter of execute_in on PostgreSQL (one parameter)


def sorted_unique(values: Iterable[str]) -> list[str]:
    """``sorted(set(values))``, faster for values that come sorted (a live batch's paths):
    the sort of a run in order is linear, and the duplicates go by ``dict.fromkeys``."""
    return list(dict.fromkeys(sorted(values)))


def chunked(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def under_prefix(column: Any, prefix: str) -> ColumnElement[bool]:
    """``column`` is a path strictly below directory ``prefix``: a key range, index-friendly
    (:func:`~assetd.catalog.sqltext.prefix_range`)."""
    if normalize_prefix(prefix) == "/":
        return column.startswith("/")  # type: ignore[no-any-return]
    lo, hi = prefix_range(prefix)
    return and_(column >= lo, column < hi)


def under_any_prefix(column: Any, prefixes: Iterable[str]) -> ColumnElement[bool]:
    conds = [under_prefix(column, p) for p in prefixes]
    return or_(*conds) if conds else ~true()


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` primary keys of ``table`` so rows that refer to each other can be
    inserted with executemany and no RETURNING round trips.

    SQLite: the caller holds the write lock (writers BEGIN IMMEDIATE), so max(id)+1.. is free.
    PostgreSQL: drawn from the column's sequence, safe with concurrent writers. The sequence
    is looked up once (a materialized CTE: inlined, ``pg_get_serial_sequence`` ran once per id,
    12 us each, 1.2 s per table of a 100,000-file first scan; ``nextval`` alone is ~1 us).
    The ids come back as one array (one row): 20,000 ids took 45 ms as rows, 19 ms as an
    array, in psycopg alone, and each row costs SQLAlchemy more on top.
    """
    if count <= 0:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        ids = session.execute(
            text(
                "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(:t, 'id')::regclass "
                "AS seq) SELECT array_agg(nextval(s.seq)) FROM s, generate_series(1, :n)"
            ),
            {"t": table.name, "n": count},
        ).scalar_one()
        return sorted(ids)
    start = session.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1)).scalar()
    first = (start or 0) + 1
    return list(range(first, first + count))


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def placeholder(session: Session) -> str:
    """The driver's positional placeholder: ``?`` (sqlite3) or ``%s`` (psycopg)."""
    return "%s" if is_postgresql(session) else "?"


def db_value(session: Session, value: dt.datetime) -> Any:
    """A timestamp as the driver takes it for a ``UTCDateTime`` column (raw SQL below)."""
    dialect = session.get_bind().dialect
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value


_PG_ROWS_PER_INSERT = 10_000


def insert_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore_conflict_on: Sequence[str] = (),
    copy: bool = False,
) -> int:
    """Bulk INSERT straight to the driver: the seed path. Returns the number of rows inserted.

    ``copy`` (PostgreSQL, no conflict to ignore): ``COPY ... FROM STDIN`` instead, for rows
    that cannot collide (ids allocated up front), about 4x an unnest insert of 100,000 rows.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, so this
    hands tuples to the driver: executemany on SQLite; on PostgreSQL an INSERT ... SELECT FROM
    unnest() of one array per column (a pipeline of one-row statements is ~10x slower).
    ``ON CONFLICT ... DO NOTHING`` is the same SQL on SQLite >= 3.24 and PostgreSQL. Values
    must be plain ints, str, bytes or None.
    """
    if not rows:
        return 0
    p = placeholder(session)
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    tail = (
        f" ON CONFLICT ({', '.join(ignore_conflict_on)}) DO NOTHING" if ignore_conflict_on else ""
    )
    one = "(" + ", ".join([p] * len(columns)) + ")"
    conn = session.connection()
    if not is_postgresql(session):
        count = int(conn.exec_driver_sql(head + one + tail, list(rows)).rowcount)
        return count if count >= 0 else len(rows)
    if copy and not ignore_conflict_on:
        return _copy_rows(session, table, columns, rows)
    # PostgreSQL: one array parameter per column (unnest). A short statement psycopg parses
    # once, where multi-row VALUES with thousands of placeholders is re-parsed on every call.
    casts = ", ".join(f"%s::{_pg_array_type(table.c[c].type)}" for c in columns)
    sql = f"{head.removesuffix(' VALUES ')} SELECT * FROM unnest({casts}){tail}"
    count = 0
    for batch in chunked(rows, _PG_ROWS_PER_INSERT):
        arrays = tuple(list(col) for col in zip(*batch, strict=True))
        count += int(conn.exec_driver_sql(sql, arrays).rowcount)
    return count


def _copy_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    """PostgreSQL ``COPY ... FROM STDIN`` in the caller's transaction, through the driver's own
    cursor; its errors are raised as SQLAlchemy's (``IntegrityError``...), like any statement's."""
    import psycopg

    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None
    try:
        with dbapi.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as err:
        raise DBAPIError.instance(sql, None, err, psycopg.Error) from err
    return len(rows)


def delete_rows(
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    extra: str = "",
) -> int:
    """Bulk DELETE of the rows whose ``columns`` equal each tuple of ``rows`` (and ``extra``, a
    SQL condition on the table's own columns): executemany on SQLite; one ``DELETE ... USING
    unnest()`` per chunk on PostgreSQL. Returns rows deleted."""
    if not rows:
        return 0
    conn = session.connection()
    if not is_postgresql(session):
        match = " AND ".join(f"{c} = ?" for c in columns) + (f" AND {extra}" if extra else "")
        result = conn.exec_driver_sql(f"DELETE FROM {table.name} WHERE {match}", list(rows))
        return max(int(result.rowcount), 0)
    casts = ", ".join(f"%s::{_pg_array_type(table.c[c].type)}" for c in columns)
    names = ", ".join(f"d_{c}" for c in columns)
    match = " AND ".join(f"t.{c} = d.d_{c}" for c in columns)
    if extra:
        match += f" AND t.{extra}"
    sql = f"DELETE FROM {table.name} t USING unnest({casts}) AS d({names}) WHERE {match}"
    count = 0
    for batch in chunked(rows, _PG_ROWS_PER_INSERT):
        arrays = tuple(list(col) for col in zip(*batch, strict=True))
        count += max(int(conn.exec_driver_sql(sql, arrays).rowcount), 0)
    return count


def _pg_array_type(column_type: Any) -> str:
    if isinstance(column_type, Boolean):
        return "boolean[]"
    if isinstance(column_type, Integer):  # BigInteger and the Id variant included
        return "bigint[]"
    if isinstance(column_type, LargeBinary):
        return "bytea[]"
    return "text[]"


def _in_list(session: Session, chunk: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """``IN (?, ?, ...)`` on SQLite; ``= ANY(%s)`` with one array parameter on PostgreSQL."""
    if is_postgresql(session):
        return "= ANY(%s)", (list(chunk),)
    return "IN (" + ", ".join("?" * len(chunk)) + ")", tuple(chunk)


def execute_in(
    session: Session, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
) -> Iterator[CursorResult[Any]]:
    """Run ``sql`` once per chunk of ``values``: ``{in}`` in the SQL is the membership test of
    the chunk (``file_path {in}``), ``{p}`` a placeholder for ``params``, which all come
    before it. Plain driver SQL: for hot paths with long path or id lists.

    PostgreSQL takes the list as one array parameter (no bound-parameter limit), in chunks of
    :data:`PG_CHUNK`: each statement may scan the table once (a 100,000-path burst's UPDATE and
    SELECT in 10,000-path chunks scanned it 20 times, a fifth of the burst's time)."""
    p = placeholder(session)
    conn = session.connection()
    for chunk in chunked(values, PG_CHUNK if is_postgresql(session) else CHUNK):
        fragment, chunk_params = _in_list(session, chunk)
        yield conn.exec_driver_sql(sql.format(p=p, **{"in": fragment}), (*params, *chunk_params))


def select_in(
    session: Session, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """All rows of :func:`execute_in`."""
    return [tuple(r) for result in execute_in(session, sql, values, params) for r in result]


def column_in(
    session: Session, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
) -> list[Any]:
    """The first column of every row of :func:`execute_in` (no row object per row: the
    live worker's ``UPDATE ... RETURNING file_path`` of a burst returns 100,000)."""
    return [v for result in execute_in(session, sql, values, params) for v in result.scalars()]


def updated_in(
    session: Session, sql: str, values: Sequence[Any], params: Sequence[Any] = ()
) -> list[Any]:
    """The values whose row the ``UPDATE ... RETURNING`` ``sql`` of :func:`execute_in` changed
    (the first column it returns), where each value names at most one row.

    SQLite: each chunk runs without its ``RETURNING`` first, in a savepoint: when as many rows
    changed as the chunk has values, each value's row did, and nothing is read back (reading
    it back was a fifth of a burst's 100,000-row UPDATE, SQLite 3.40). Otherwise the chunk is
    rolled back and run again with it. PostgreSQL: :func:`column_in`."""
    if is_postgresql(session):
        return column_in(session, sql, values, params)
    head, _, tail = sql.rpartition(" RETURNING ")
    if not head or "{in}" not in head or "{in}" in tail:
        raise ValueError(f"updated_in: an UPDATE ... {{in}} ... RETURNING column, got {sql!r}")
    conn, p = session.connection(), placeholder(session)
    out: list[Any] = []
    for chunk in chunked(values, CHUNK):
        fragment, chunk_params = _in_list(session, chunk)
        args = (*params, *chunk_params)
        conn.exec_driver_sql("SAVEPOINT assetd_updated_in")
        changed = conn.exec_driver_sql(head.format(p=p, **{"in": fragment}), args).rowcount
        if changed == len(chunk):
            out.extend(chunk)
        else:
            conn.exec_driver_sql("ROLLBACK TO assetd_updated_in")
            again = conn.exec_driver_sql(sql.format(p=p, **{"in": fragment}), args)
            out.extend(again.scalars())
        conn.exec_driver_sql("RELEASE assetd_updated_in")
    return out


def update_in(session: Session, sql: str, values: Sequence[Any], params: Sequence[Any] = ()) -> int:
    """Rows changed by :func:`execute_in` of an UPDATE."""
    return sum(max(int(r.rowcount), 0) for r in execute_in(session, sql, values, params))
