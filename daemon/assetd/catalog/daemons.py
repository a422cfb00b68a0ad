"""The ``daemons`` table: one row per host's running (or last-run) daemon."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.engine import SessionFactory, one_line
from assetd.catalog.models import daemons
from assetd.catalog.states import utcnow

_log = log.get_logger(__name__)


def record_start(session: Session, host: str, pid: int, version: str) -> None:
    now = utcnow()
    values = {
        "pid": pid,
        "version": version,
        "started_at": now,
        "heartbeat_at": now,
        "error": None,
    }
    exists = session.execute(select(daemons.c.id).where(daemons.c.host == host)).scalar()
    if exists is None:
        session.execute(daemons.insert().values(host=host, status="starting", **values))
    else:
        session.execute(
            update(daemons).where(daemons.c.host == host).values(status="starting", **values)
        )


def heartbeat(
    session: Session,
    host: str,
    status: str,
    now: dt.datetime | None = None,
    *,
    error: str | None = None,
) -> None:
    """The daemon's word on itself; ``error`` says why it is ``degraded`` or ``failed``."""
    session.execute(
        update(daemons)
        .where(daemons.c.host == host)
        .values(heartbeat_at=now or utcnow(), status=status, error=error)
    )


def beat(
    sessions: SessionFactory,
    host: str,
    status: str,
    error: str | None = None,
    *,
    quiet: bool = True,
) -> None:
    """:func:`heartbeat` in its own transaction. ``quiet``: a database error is logged (debug)
    and dropped; otherwise it propagates (the pipeline's probe of a database that is down)."""
    try:
        with sessions() as s, s.begin():
            heartbeat(s, host, status, error=error)
    except SQLAlchemyError as err:
        if not quiet:
            raise
        _log.debug("heartbeat.failed", error=one_line(err))
