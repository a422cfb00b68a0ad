"""One daemon per host on a PostgreSQL catalog: a session advisory lock keyed on the host id.

The lock lives on a connection of its own, idle for the daemon's life, and goes with the
session: a daemon killed with SIGKILL (its connection closed by the kernel) never blocks the
next start. The holder names itself in ``application_name`` before it takes the lock, so a
second daemon can say which pid holds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from assetd.errors import HostLocked

APP_PREFIX = "assetd pid "


def lock_key(host: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, the same for the same host id."""
    digest = hashlib.blake2b(f"assetd-host:{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryHostLock:
    """``pg_try_advisory_lock(lock_key(host))`` held on a dedicated connection."""

    def __init__(self, engine: Engine, host: str) -> None:
        self.engine = engine
        self.host = host
        self._conn: Connection | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`HostLocked` naming the holder's pid."""
        key = lock_key(self.host)
        conn = self.engine.connect()
        try:
            conn.execute(
                text("SELECT set_config('application_name', :n, false)"),
                {"n": f"{APP_PREFIX}{os.getpid()}"},
            )
            taken = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            conn.commit()  # the lock is the session's: no transaction is left open
        except BaseException:
            conn.close()
            raise
        if taken:
            self._conn = conn
            return
        conn.close()
        raise HostLocked(
            f"another assetd ({self._holder(key)}) already runs for host {self.host!r} on "
            "this catalog; stop it first, or give this one another daemon.host"
        )

    def _holder(self, key: int) -> str:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        sql = text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = CAST(:hi AS oid) AND l.objid = CAST(:lo AS oid)"
        )
        with contextlib.suppress(SQLAlchemyError), self.engine.connect() as conn:
            name = conn.execute(sql, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).scalar()
            if isinstance(name, str) and name.startswith(APP_PREFIX):
                return f"pid {name.removeprefix(APP_PREFIX)}"
        return "another process"

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # the connection may have been cut
                self._conn.close()
            self._conn = None
