"""The catalog side of reconcile's merge: a root's rows under a directory, in path order, a page
per short transaction (:class:`CatalogPages`), able to jump over stretches the walk's worker
processes found equal to the disk already (:class:`assetd.walk_dir.Same`)."""

from __future__ import annotations

import os

from sqlalchemy.orm import Session

from assetd.catalog.roots import RootSpec
from assetd.catalog.sqlutil import normalize_prefix, placeholder
from assetd.diff import RowTuple
from assetd.walk_dir import DISK_ROW_COLUMNS

__all__ = ["CatalogPages", "catalog_file"]

_ROWS_SQL = (
    f"SELECT {DISK_ROW_COLUMNS} FROM asset_cache_states WHERE root_id = {{p}} "
    "AND file_path > {p} AND file_path < {p} ORDER BY file_path LIMIT {page}"
)


class CatalogPages:
    """The root's rows under ``top`` (catalog form; default: the root's path), ascending by
    path, a page per short transaction (keyset pagination; plain driver SQL and the driver's
    tuples, this is the re-scan's hot path: :func:`assetd.diff.diff_runs` compares them as they
    come). :meth:`seek` jumps over rows a walk's worker found equal to the disk already."""

    def __init__(
        self, session: Session, root: RootSpec, top: str | None = None, page: int = 5000
    ) -> None:
        self.session, self.root_id = session, root.id
        self.page = int(page)
        prefix = normalize_prefix(top or root.path)
        self.low, self.high = (prefix + "/", prefix + "0") if prefix != "/" else ("/", "0")
        p = placeholder(session)
        self._after = _ROWS_SQL.format(p=p, page=self.page)
        self._from = self._after.replace(f"file_path > {p}", f"file_path >= {p}", 1)
        self.last = self.low  # no path equals "prefix/" itself: "> low" is every path below it
        self.sql = self._after
        self.done = False
        self.head: list[RowTuple] | None = None
        self.bound: str | None = None  # until()

    def first(self) -> list[RowTuple] | None:
        """The first page (None if there is no row), read now; iterating yields it again."""
        self.head = next(self, None)
        return self.head

    def __iter__(self) -> CatalogPages:
        return self

    def __next__(self) -> list[RowTuple]:
        if self.head is not None:
            page, self.head = self.head, None
            return page
        if self.done:
            raise StopIteration
        bound = self.bound
        high = self.high if bound is None or bound > self.high else bound
        cursor = self.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self.sql, (self.root_id, self.last, high))  # one bound: an index seek
        rows: list[RowTuple] = cursor.fetchall()
        cursor.close()
        self.session.commit()  # never hold a transaction (SQLite: the write lock) across a walk
        if len(rows) < self.page:
            if high is self.high:
                self.done = True
            else:  # every row before the bound is read: on from it, later
                self.last, self.sql = high, self._from
                if not rows:
                    raise StopIteration
                return rows
        if not rows:
            raise StopIteration
        self.last, self.sql = rows[-1][0], self._after
        return rows

    def at_least(self, n: int) -> bool:
        """Whether the catalog has ``n`` rows or more under ``top`` (an index-only count of
        ``n`` at most)."""
        if n <= 0:
            return True
        p = placeholder(self.session)
        sql = (
            f"SELECT 1 FROM asset_cache_states WHERE root_id = {p} AND file_path > {p} "
            f"AND file_path < {p} ORDER BY file_path LIMIT 1 OFFSET {int(n) - 1}"
        )
        cursor = self.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, (self.root_id, self.low, self.high))
        found = cursor.fetchone() is not None
        cursor.close()
        self.session.commit()
        return found

    def seek(self, key: str) -> None:
        """The next page starts at the first row at or after ``key`` (after every row read)."""
        if self.head is None and key > self.last:
            self.last, self.sql = key, self._from

    def until(self, key: str | None) -> None:
        """Pages end before ``key`` (None: at the end of ``top``) until told otherwise; when
        the rows before it run out, iteration stops for now and goes on from ``key``."""
        self.bound = key


def catalog_file(session: Session, root: RootSpec) -> tuple[str, int] | None:
    """(the SQLite catalog's file, the root's id) for a walk's workers to compare with, when
    the catalog is a plain SQLite file they can open read-only; else None."""
    url = session.get_bind().engine.url
    db = url.database
    if url.get_backend_name() != "sqlite" or not db or db == ":memory:" or url.query:
        return None
    if db.startswith("file:") or not os.path.isfile(db):
        return None
    return os.path.abspath(db), root.id
