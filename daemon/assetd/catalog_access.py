"""What every command needs: the configuration, this host's id and the catalog, opened the way
the command may use it (writing and creating/upgrading the schema, or read-only).

Light on purpose: the read-only commands import this, so the catalog modules only writers use
are imported where they are used."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from assetd.catalog.engine import make_engine, session_factory, translate_db_errors
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.config import Config
from assetd.statedir import host_id, read_host_id, usable_state_dir

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from assetd.catalog.engine import SessionFactory
    from assetd.catalog.roots import RootSpec


@dataclass
class Catalog:
    """An open catalog: its engine and the host it is used for. The read-only commands query
    it with Core connections (:meth:`connect`); the session factory (the ORM's import) is made
    the first time a writer asks for it."""

    config: Config
    host: str
    engine: Engine

    @property
    def url(self) -> str:
        return self.config.database_url

    @functools.cached_property
    def sessions(self) -> SessionFactory:
        return session_factory(self.engine)

    def session(self) -> Session:
        return self.sessions()

    def connect(self) -> Connection:
        """A Core connection for read queries (no ORM): its transaction begins with the first
        statement and is rolled back when the connection closes."""
        return self.engine.connect()

    def register_roots(self) -> list[RootSpec]:
        """Create or update this host's configured roots; their specs, in config order."""
        from assetd.catalog.roots import register_roots  # writers only: read-only commands

        # (status, ls, why) do not load the roots module and its imports
        with translate_db_errors(self.url), self.sessions() as s, s.begin():
            return register_roots(s, self.host, self.config.roots, self.config.watch.ignore)

    def host_root_ids(self) -> list[int]:
        from assetd.catalog.roots import host_root_ids

        with translate_db_errors(self.url), self.sessions() as s:
            return host_root_ids(s, self.host)

    def prune_removed_roots(self, roots: Sequence[RootSpec]) -> None:
        """Roots of this host no longer configured (``roots`` are): their files are marked
        missing, kept (a database error is logged)."""
        from assetd.catalog.prune import mark_missing_outside_prefixes_safely

        configured = {r.id for r in roots}
        removed = [i for i in self.host_root_ids() if i not in configured]
        if removed and roots:
            mark_missing_outside_prefixes_safely(
                self.sessions, [r.path for r in roots], roots=removed
            )

    def close(self) -> None:
        self.engine.dispose()


def open_catalog(config: Config, *, write: bool, upgrade: Upgrade | None = None) -> Catalog:
    """Open the catalog. ``write``: create the state directory, open read-write, and create
    (or, with ``Upgrade.ALWAYS``, upgrade) the schema; else open read-only and require the
    schema to match."""
    url = config.database_url
    with translate_db_errors(url):
        if write:
            prepare_state_dir(config)
            engine = make_engine(url, pool_size=config.database.pool_size)
            ensure_schema(engine, upgrade or Upgrade.CREATE)
        else:
            engine = make_engine(url, readonly=True, pool_size=config.database.pool_size)
            ensure_schema(engine, Upgrade.NEVER)
    host = host_id(config) if write else read_host_id(config)  # a reader writes nothing
    return Catalog(config, host, engine)


def prepare_state_dir(config: Config) -> str:
    """Create the state directory and check it is writable; one line naming
    ``daemon.state_dir`` (exit 78) if it cannot be used."""
    return usable_state_dir(config, create=True)


@contextlib.contextmanager
def catalog(config: Config, *, write: bool, upgrade: Upgrade | None = None) -> Iterator[Catalog]:
    cat = open_catalog(config, write=write, upgrade=upgrade)
    try:
        yield cat
    finally:
        cat.close()
