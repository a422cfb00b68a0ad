"""The rows behind ``assetd status`` (and the root lines of ``ls`` and ``why``): each root with
the counts of its files, and the daemons table. Plain SQL text (:mod:`assetd.catalog.sqltext`),
so ``status`` runs the same queries on a SQLite catalog read without SQLAlchemy
(:mod:`assetd.catalog.lite`) as on PostgreSQL or in the daemon. Nothing here writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from assetd.catalog.sqltext import TextReader, query, rows_as, utc


def iso(value: dt.datetime | None) -> str | None:
    """A timestamp as ISO text for ``--json`` (None stays None)."""
    return value.isoformat() if value is not None else None


HEARTBEAT_STALE_S = 60.0
"""A running daemon writes its heartbeat every 15 s (``service.HEARTBEAT_EVERY``); four missed
beats and it is taken for stuck or gone."""
ACTIVE_STATUSES = frozenset({"starting", "running", "degraded"})


@dataclass(frozen=True, slots=True)
class RootRow:
    """A ``roots`` row with the counts of its cache states."""

    id: int
    host: str
    name: str
    path: str
    state: str
    state_reason: str | None
    epoch: int
    last_event_at: dt.datetime | None
    last_reconcile_at: dt.datetime | None
    last_reconcile_ms: int | None
    live: int = 0
    missing: int = 0
    unhashed: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "host": self.host,
            "name": self.name,
            "path": self.path,
            "state": self.state,
            "state_reason": self.state_reason,
            "epoch": self.epoch,
            "last_event_at": iso(self.last_event_at),
            "last_reconcile_at": iso(self.last_reconcile_at),
            "last_reconcile_ms": self.last_reconcile_ms,
            "live": self.live,
            "missing": self.missing,
            "unhashed": self.unhashed,
        }


_ROOT_COLUMNS = (
    "id",
    "host",
    "name",
    "path",
    "state",
    "state_reason",
    "epoch",
    "last_event_at",
    "last_reconcile_at",
    "last_reconcile_ms",
)
_COUNTS = (
    "SELECT c.root_id, "
    "sum(CASE WHEN c.is_missing = true THEN 1 ELSE 0 END), "
    "sum(CASE WHEN c.is_missing = false AND (a.hash IS NULL OR c.needs_verify = true) "
    "THEN 1 ELSE 0 END), "
    "count(*) "
    "FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
    "WHERE c.root_id IN :ids GROUP BY c.root_id"
)


def root_rows(
    session: TextReader, *, host: str | None = None, ids: Collection[int] | None = None
) -> list[RootRow]:
    """Roots (of ``host``, or these ``ids``, or all) ordered by host and name, with live,
    missing and unhashed (live, asset unhashed or ``needs_verify``) counts."""
    params: dict[str, object] = {}
    if host is not None:
        params["host"] = host
    if ids is not None:
        params["ids"] = list(ids)
    where = " AND ".join(f"{k} = :host" if k == "host" else f"id IN :{k}" for k in params)
    sql = f"SELECT {', '.join(_ROOT_COLUMNS)} FROM roots"
    sql += (f" WHERE {where}" if where else "") + " ORDER BY host, name"
    rows = rows_as(_ROOT_COLUMNS, query(session, sql, **params))
    if not rows:
        return []
    counts: dict[int, tuple[int, int, int]] = {}
    for root_id, n_missing, n_unhashed, n_all in query(
        session, _COUNTS, ids=[r["id"] for r in rows]
    ):
        counts[int(root_id)] = (int(n_all) - int(n_missing), int(n_missing), int(n_unhashed))
    out = []
    for r in rows:
        live, n_missing, n_unhashed = counts.get(int(r["id"]), (0, 0, 0))
        out.append(
            RootRow(
                id=int(r["id"]),
                host=r["host"],
                name=r["name"],
                path=r["path"],
                state=r["state"],
                state_reason=r["state_reason"],
                epoch=int(r["epoch"]),
                last_event_at=utc(r["last_event_at"]),
                last_reconcile_at=utc(r["last_reconcile_at"]),
                last_reconcile_ms=r["last_reconcile_ms"],
                live=live,
                missing=n_missing,
                unhashed=n_unhashed,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class DaemonRow:
    host: str
    pid: int | None
    version: str | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    status: str
    error: str | None = None  # why it is degraded or failed

    def heartbeat_age(self, now: dt.datetime) -> float:
        return (now - self.heartbeat_at).total_seconds()

    def is_running(self, now: dt.datetime) -> bool:
        """Its last word was that it runs, and it said so recently."""
        return self.status in ACTIVE_STATUSES and self.heartbeat_age(now) < HEARTBEAT_STALE_S

    def as_dict(self, now: dt.datetime) -> dict[str, object]:
        return {
            "host": self.host,
            "pid": self.pid,
            "version": self.version,
            "status": self.status,
            "error": self.error,
            "running": self.is_running(now),
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "heartbeat_age_s": round(self.heartbeat_age(now), 1),
        }


_DAEMON_COLUMNS = ("host", "pid", "version", "started_at", "heartbeat_at", "status", "error")


def daemon_rows(session: TextReader, *, host: str | None = None) -> list[DaemonRow]:
    sql = f"SELECT {', '.join(_DAEMON_COLUMNS)} FROM daemons"
    sql += (" WHERE host = :host" if host is not None else "") + " ORDER BY host"
    out = []
    params = {} if host is None else {"host": host}
    for r in rows_as(_DAEMON_COLUMNS, query(session, sql, **params)):
        started, beat = utc(r["started_at"]), utc(r["heartbeat_at"])
        assert started is not None and beat is not None  # NOT NULL columns
        out.append(
            DaemonRow(
                host=r["host"],
                pid=r["pid"],
                version=r["version"],
                started_at=started,
                heartbeat_at=beat,
                status=r["status"],
                error=r["error"],
            )
        )
    return out


def root_ids_by_name(session: TextReader, host: str, names: Iterable[str]) -> list[int]:
    """The ids of the roots called one of ``names`` (this host's; every host's when ``host``
    is empty)."""
    sql = "SELECT id FROM roots WHERE name IN :names" + (" AND host = :host" if host else "")
    params: dict[str, object] = {"names": sorted(set(names))}
    if host:
        params["host"] = host
    return [int(row[0]) for row in query(session, sql, **params)]
