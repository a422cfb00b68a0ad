"""One daemon per host on a PostgreSQL catalog: a session advisory lock keyed on the host id.

The lock lives on a connection of its own, idle for the daemon's life, and goes with the
session: a daemon killed with SIGKILL (its connection closed by the kernel) never blocks the
next start. The holder names itself in ``application_name`` before it takes the lock, so a
second daemon can say which pid holds it.

The server may end that session (``pg_terminate_backend``, a restart, an idle timeout): the lock
goes with it. The daemon calls :meth:`AdvisoryHostLock.check` every few seconds, which re-takes
it on a new connection, or raises :class:`HostLocked` if another daemon took it meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.errors import HostLocked

_log = log.get_logger(__name__)

APP_PREFIX = "assetd pid "
CHECK_EVERY = 2.0  # a lock whose session the server ended is re-taken within this


def lock_key(host: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, the same for the same host id."""
    digest = hashlib.blake2b(f"assetd-host:{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryHostLock:
    """``pg_try_advisory_lock(lock_key(host))`` held on a dedicated connection."""

    def __init__(
        self, engine: Engine, host: str, on_lost: Callable[[], None] | None = None
    ) -> None:
        """With ``on_lost``, :meth:`acquire` also keeps the lock (:meth:`keep`)."""
        self.engine = engine
        self.host = host
        self.on_lost = on_lost
        self._conn: Connection | None = None
        self.lost = False  # another daemon took the lock after the server cut this one's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
            if self.on_lost is not None and self._thread is None:
                self.keep(self.on_lost)
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

    def check(self) -> str:
        """``"held"`` when the lock's session is alive; else take the lock again on a new
        connection: ``"retaken"``, or ``"unreachable"`` while the database does not answer (the
        caller tries again later). Raises :class:`HostLocked` when another daemon holds it now.
        """
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                self._conn.commit()
                return "held"
            except SQLAlchemyError:
                self._close()  # the session, and its lock, are gone
        try:
            self.acquire()
        except SQLAlchemyError:
            return "unreachable"
        return "retaken"

    def keep(self, on_lost: Callable[[], None], every: float = CHECK_EVERY) -> None:
        """Check the lock every ``every`` seconds on a thread of its own (a database that
        hangs never stalls the caller); when another daemon took it, set :attr:`lost`, log
        ``hostlock.lost`` and call ``on_lost``. Ended by :meth:`release`."""

        def run() -> None:
            while not self._stop.wait(every):
                try:
                    if self.check() == "retaken":
                        _log.warning("hostlock.retaken", reason="the server ended its session")
                except HostLocked as err:
                    _log.error("hostlock.lost", error=str(err), action="stopping (exit 75)")
                    self.lost = True
                    on_lost()
                    return

        self._thread = threading.Thread(target=run, name="assetd-hostlock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
            self._thread = None
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # the connection may have been cut
                self._conn.close()
            self._conn = None
