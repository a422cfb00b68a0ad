"""``assetd status``: one screen on the daemon, each root, the hashing backlog and whatever
needs attention, read from the catalog only (so it works with the daemon stopped, and for a
user who may only read the catalog). ``--json`` for scripts. A SQLite catalog is read without
importing SQLAlchemy (:mod:`assetd.catalog_reader`): most of the command's start-up otherwise."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from assetd import __version__
from assetd.api.status_file import describe_api, read_api_status
from assetd.catalog.backlog import hashing_backlog
from assetd.catalog.dberrors import describe_url
from assetd.catalog.overview import (
    ACTIVE_STATUSES,
    HEARTBEAT_STALE_S,
    DaemonRow,
    RootRow,
    daemon_rows,
    root_rows,
)
from assetd.catalog.sqltext import utcnow
from assetd.catalog_reader import read_catalog
from assetd.commands._format import format_age, format_time, human_size, say
from assetd.config import Config
from assetd.fsutil import filesystem_type, is_network_filesystem
from assetd.statefiles import read_backends

_WHY = {  # the reasons of an unavailable root (DESIGN §6) and what to check
    "missing": "its directory is not there",
    "not-mounted": "it was a mount point and its filesystem is not mounted",
    "permission-denied": "the daemon may not read it",
    "not-a-directory": "its path is not a directory",
    "not-responding": "its filesystem does not answer (a hung network mount?)",
}
RECENT_LOSS_S = 24 * 3600.0  # an overflow or watcher restart is reported for a day
_LOSS = re.compile(r"^(overflow|watcher restarted) at (\S+)$")


@dataclass(frozen=True, slots=True)
class Attention:
    kind: str
    message: str
    root: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "root": self.root, "message": self.message}


def _pid_alive(pid: int | None) -> bool | None:
    """Whether a process ``pid`` exists on this machine (None: cannot tell)."""
    if not pid:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    except OSError:
        return None
    return True


def daemon_attention(d: DaemonRow, now: dt.datetime) -> list[Attention]:
    out = []
    age = d.heartbeat_age(now)
    if d.status in ACTIVE_STATUSES and age >= HEARTBEAT_STALE_S:
        gone = _pid_alive(d.pid) is False
        out.append(
            Attention(
                "stale-heartbeat",
                f"the daemon of host {d.host} said {d.status!r} but its last heartbeat is "
                f"{format_age(age)} old"
                + (
                    f" and pid {d.pid} is gone (killed or crashed)"
                    if gone
                    else " (a daemon that cannot write the catalog says why in its STATUS=)"
                )
                + ": check `systemctl status assetd` and `assetd logs --since 1h --level warning`",
            )
        )
    elif d.status == "degraded":
        why = f" ({d.error})" if d.error else " (database unavailable)"
        out.append(
            Attention(
                "database",
                f"the daemon cannot write the catalog{why}; it keeps the changes and "
                "reconciles once the database is back",
            )
        )
    elif d.status == "failed":
        out.append(
            Attention(
                "crashed",
                f"the daemon of host {d.host} crashed {format_age(age)} ago: "
                f"{d.error or 'no error recorded'}; systemd restarts it: see "
                "`assetd logs --since 1h --level error`",
            )
        )
    if d.is_running(now) and d.version and d.version != __version__:
        out.append(
            Attention(
                "version",
                f"the daemon runs assetd {d.version}, this command is {__version__}: restart it "
                "after an upgrade (`systemctl restart assetd`)",
            )
        )
    return out


def root_attention(
    r: RootRow, now: dt.datetime, *, polling: bool | None, local: bool
) -> list[Attention]:
    """What needs a person about one root. ``polling``: its configured mode (None: not in this
    config); ``local``: the root belongs to this host, so its path can be looked at here."""
    out = []
    if r.state == "unavailable":
        reason = r.state_reason or "missing"
        rows = (
            f"its {r.live} file(s) are left as they are (unknown, not gone)"
            if reason == "permission-denied"
            else f"its {r.missing} file(s) are marked missing"
        )
        out.append(
            Attention(
                "unavailable",
                f"root {r.name} is unavailable ({reason}: {_WHY.get(reason, reason)}): {rows} "
                f"until {r.path} is back",
                r.name,
            )
        )
    elif r.state == "covered":
        out.append(
            Attention(
                "covered",
                f"root {r.name} is covered: another filesystem is mounted over {r.path}; its "
                f"{r.missing} file(s) are marked missing (root-covered) and the covering "
                "filesystem is not catalogued until it is unmounted",
                r.name,
            )
        )
    elif r.state == "degraded":
        kind = "watch-limit" if "inotify" in (r.state_reason or "") else "degraded"
        out.append(Attention(kind, f"root {r.name}: {r.state_reason or 'degraded'}", r.name))
    loss = _LOSS.match(r.state_reason or "") if r.state == "watching" else None
    when = _parse_utc(loss.group(2)) if loss else None
    if loss and when and (now - when).total_seconds() < RECENT_LOSS_S:
        repaired = r.last_reconcile_at is not None and r.last_reconcile_at >= when
        after = "repaired by the reconcile after it" if repaired else "a reconcile is pending"
        advice = (
            "; if it recurs, raise [watch] queue_size and fs.inotify.max_queued_events"
            if loss.group(1) == "overflow"
            else ""
        )
        kind = "overflow" if loss.group(1) == "overflow" else "watcher-restart"
        ago = format_age((now - when).total_seconds())
        message = f"root {r.name} lost events ({loss.group(1)}) {ago} ago, epoch {r.epoch}: "
        out.append(Attention(kind, message + after + advice, r.name))
    if local and polling is False and r.state == "watching":  # (degraded is polled already)
        fs_type = filesystem_type(r.path)
        if is_network_filesystem(fs_type):
            out.append(
                Attention(
                    "network-no-polling",
                    f"root {r.name} is on {fs_type} without polling = true: inotify does not "
                    "see other hosts' changes there",
                    r.name,
                )
            )
    return out


def _parse_utc(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def config_attention(config: Config, roots: Iterable[RootRow]) -> list[Attention]:
    """Roots this config names that the catalog lacks, and the reverse (when it names any)."""
    if not config.roots:
        return []
    known = {r.name: r for r in roots}
    out = []
    for rc in config.roots:
        row = known.get(rc.name)
        if row is None:
            out.append(
                Attention(
                    "not-in-catalog",
                    f"root {rc.name} ({rc.path}) is configured but not in the catalog: "
                    "(re)start the daemon or run `assetd scan`",
                    rc.name,
                )
            )
        elif row.path != rc.path:
            out.append(
                Attention(
                    "path-changed",
                    f"root {rc.name} is configured at {rc.path} but catalogued at {row.path}: "
                    "with this config, the next `assetd run` or `assetd scan` points the root "
                    f"back at {rc.path} and marks its {row.live} file(s) catalogued under "
                    f"{row.path} missing (their metadata is kept). If the files are at "
                    f"{row.path} now, set path = {json.dumps(row.path)} in the config; if they "
                    f"moved to {rc.path}, run `assetd roots move {rc.name} {rc.path}` first",
                    rc.name,
                )
            )
    names = {rc.name for rc in config.roots}
    for r in known.values():
        if r.name not in names:
            out.append(
                Attention(
                    "not-configured",
                    f"root {r.name} ({r.path}) is in the catalog but not in this config: the "
                    "daemon marks its files missing",
                    r.name,
                )
            )
    return out


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    now = utcnow()
    with read_catalog(config) as cat:  # a SQLite catalog without importing SQLAlchemy
        host = cat.host
        scoped = host and not args.all_hosts
        roots = root_rows(cat.reader, host=host if scoped else None)
        daemons = daemon_rows(cat.reader, host=host if scoped else None)
        backlog = hashing_backlog(cat.reader, roots=[r.id for r in roots])
    attention: list[Attention] = []
    for d in daemons:
        attention += daemon_attention(d, now)
    by_name = {rc.name: rc for rc in config.roots}
    for r in roots:
        rc = by_name.get(r.name) if r.host == host else None
        attention += root_attention(
            r, now, polling=rc.polling if rc else None, local=bool(host) and r.host == host
        )
    attention += config_attention(config, [r for r in roots if r.host == host])
    if backlog[0] and not config.hashing.enabled and config.source:
        attention.append(
            Attention("hashing-disabled", "hashing is disabled: run `assetd hash` for the backlog")
        )
    running = next((d.pid for d in daemons if d.host == host and d.is_running(now)), None)
    watched = {d.host for d in daemons if d.is_running(now)}
    stopped = {d.host: d.heartbeat_at for d in daemons if not d.is_running(now)}
    api = describe_api(read_api_status(config.state_dir), running)
    backends = read_backends(config.state_dir, running)
    attention += [Attention("api-unavailable", f"API: {a}") for a in api if "unavailable" in a]
    if args.json:
        report = {
            "api": api,
            "host": host or None,
            "catalog": describe_url(cat.url),
            "version": __version__,
            "daemons": [d.as_dict(now) for d in daemons],
            "roots": [
                {
                    **r.as_dict(),
                    "backend": backends.get(r.name) if r.host == host else None,
                    "watched": r.host in watched,
                    "not_watched_since": None
                    if r.host in watched or r.host not in stopped
                    else stopped[r.host].isoformat(),
                }
                for r in roots
            ],
            "hashing_backlog": {"files": backlog[0], "bytes": backlog[1]},
            "attention": [a.as_dict() for a in attention],
        }
        print(json.dumps(report))
        return 0
    say(f"assetd {__version__}: host {host or '(unknown)'}, catalog {describe_url(cat.url)}")
    if not daemons:
        say("daemon:   not running (no daemon has run" + (" on this host)" if scoped else ")"))
    for d in daemons:
        say(("daemon:   " if scoped else f"daemon {d.host}: ") + describe_daemon(d, now))
    if scoped and roots and host not in watched:
        say(
            "roots:    "
            + describe_unwatched(next((d for d in daemons if d.host == host), None), now)
        )
    if api:
        say("api:      " + "; ".join(api))
    if backends:
        by_kind = {
            k: [n for n, b in sorted(backends.items()) if b == k] for k in set(backends.values())
        }
        say("watch:    " + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(by_kind.items())))
    say()
    print_roots(roots, now, show_host=not scoped, watched=watched)
    say()
    say(f"hashing backlog: {backlog[0]} file(s), {human_size(backlog[1])}")
    if attention:
        say("attention:")
        for a in attention:
            say(f"  ! {a.message}")
    else:
        say("attention: nothing")
    return 0


def describe_daemon(d: DaemonRow, now: dt.datetime) -> str:
    who = f"pid {d.pid}, version {d.version}"
    beat = f"last heartbeat {format_age(d.heartbeat_age(now))} ago"
    if d.is_running(now):
        up = format_age((now - d.started_at).total_seconds())
        state = "running" if d.status == "running" else d.status.upper()
        why = f": {d.error}" if d.error and d.status != "running" else ""
        return f"{state} ({who}{why}), up {up}, {beat}"
    if d.status in ACTIVE_STATUSES:
        return f"NOT RESPONDING (said {d.status}; {who}), {beat}"
    if d.status == "failed":
        when = format_time(d.heartbeat_at, now)
        return f"CRASHED {when} ({d.error or 'no error recorded'}; {who})"
    return f"not running ({d.status} {format_time(d.heartbeat_at, now)}; {who})"


def describe_unwatched(last: DaemonRow | None, now: dt.datetime) -> str:
    """The line saying this host's roots are not being watched, and since when."""
    if last is None:
        return "not being watched: no daemon has run on this host (start it: `assetd run`)"
    how = "crashed" if last.status == "failed" else "stopped"
    if last.status in ACTIVE_STATUSES:
        how = "stopped answering"
    return f"not being watched since the daemon {how} {format_time(last.heartbeat_at, now)}"


_WATCHED_STATES = ("watching", "polling", "degraded")


def print_roots(
    roots: list[RootRow], now: dt.datetime, *, show_host: bool, watched: set[str]
) -> None:
    """The roots table; a root whose host runs no daemon is ``not watched`` (its recorded
    state was the last daemon's), an unavailable or covered one keeps that state."""
    if not roots:
        say("roots:    none in the catalog")
        return
    head = ["ROOT", "STATE", "EPOCH", "LAST EVENT", "LAST RECONCILE", "LIVE", "MISSING"]
    head += ["UNHASHED", "PATH"]
    if show_host:
        head.insert(1, "HOST")
    table = [head]
    for r in roots:
        event = (
            f"{format_age((now - r.last_event_at).total_seconds())} ago" if r.last_event_at else "-"
        )
        recon = "never"
        if r.last_reconcile_at is not None:
            recon = f"{format_age((now - r.last_reconcile_at).total_seconds())} ago"
            if r.last_reconcile_ms is not None:
                recon += f" ({r.last_reconcile_ms / 1000:.2f} s)"
        state = f"{r.state} ({r.state_reason})" if r.state == "unavailable" else r.state
        if r.host not in watched and r.state in _WATCHED_STATES:
            state = "not watched"
        row = [r.name, state, str(r.epoch), event, recon, str(r.live), str(r.missing)]
        row += [str(r.unhashed), r.path]
        if show_host:
            row.insert(1, r.host)
        table.append(row)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    numeric = {"EPOCH", "LIVE", "MISSING", "UNHASHED"}
    for row in table:
        cells = [
            cell.rjust(w) if head[i] in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        say("  ".join(cells).rstrip())
