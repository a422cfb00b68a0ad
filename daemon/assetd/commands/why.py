"""``assetd why``: everything the catalog knows of one path and why it is in that state, for
people (aligned text) and scripts (``--json``); the queries are in :mod:`assetd.catalog.report`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

from assetd.catalog.overview import root_rows
from assetd.catalog.report import Hop, PathFacts, count_under, path_facts, trace_moves
from assetd.catalog.sqltext import utcnow
from assetd.catalog.vocab import How, Reason
from assetd.catalog_reader import read_catalog
from assetd.commands._format import format_time, say
from assetd.config import Config
from assetd.fsutil import IgnoreRules, encode_path, os_path_of
from assetd.paths import deepest_parent

_WHY_MISSING = {
    Reason.LIVE: "its file was deleted or moved out of the roots; the daemon saw it happen "
    "(live batch)",
    Reason.RECONCILE: "found gone by a reconcile (a full pass: daemon start, the periodic "
    "pass, or `assetd scan`)",
    Reason.PRUNE: "outside the configured roots when a prune ran (`assetd prune`, or its "
    "root's path changed or the root left the config)",
    Reason.ROOT_UNAVAILABLE: "its root went away (unmounted, or its directory gone); it is "
    "restored when the root comes back",
    Reason.ROOT_COVERED: "another filesystem is mounted over its root; it is restored when "
    "that is unmounted",
}
_WHY_LIVE = {
    Reason.SEED: "first catalogued by a walk of its root (scan, reconcile or the daemon)",
    Reason.LIVE: "restored or changed, seen by the daemon as it happened (live batch)",
    Reason.RECONCILE: "restored or changed, found by a reconcile",
    Reason.MOVED: "moved here from another path; its metadata came along (a rename seen "
    "live, or a guessed move whose content the hasher confirmed)",
    Reason.REPLACED: "another file was moved onto this path (mv, or an editor's atomic save): "
    "an edit of it; it kept its metadata and gained the moved file's, and its new content is "
    "read again",
}


def explain_state(row: PathFacts) -> str:
    table = _WHY_MISSING if row.is_missing else _WHY_LIVE
    return table.get(row.state_reason, "") + f" (state_reason {row.state_reason!r})"


def _disk_facts(os_path: str, rows: list[PathFacts]) -> dict[str, object]:
    try:
        st = os.stat(os_path)
    except OSError as err:
        return {"exists": False, "error": err.strerror}
    facts: dict[str, object] = {"exists": True, "regular_file": os.path.isfile(os_path)}
    if os.path.isfile(os_path):
        facts.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        if rows:
            facts["matches_catalog"] = (rows[0].size, rows[0].mtime_ns) == (
                st.st_size,
                st.st_mtime_ns,
            )
    return facts


def cmd_why(config: Config, args: argparse.Namespace) -> int:
    """Everything the catalog knows of one path, and why it is in that state."""
    os_path = os.path.abspath(args.path)
    path = encode_path(os_path)[0]
    now = utcnow()
    with read_catalog(config) as cat:  # a SQLite catalog without importing SQLAlchemy
        s = cat.reader
        rows = path_facts(s, path)
        under = count_under(s, path) if not rows else (0, 0)
        host_roots = root_rows(s, host=cat.host) if cat.host else root_rows(s)
        hops = [] if rows else trace_moves(s, path, roots=[r.id for r in host_roots])
        now_at = path_facts(s, hops[-1].to_path) if hops else []
        below_now = count_under(s, hops[-1].to_path) if hops and not now_at else (0, 0)
    known = [(r.name, r.path) for r in host_roots]
    known += [(r.name, r.path) for r in config.roots if r.name not in {n for n, _ in known}]
    root = deepest_parent((((name, path), path) for name, path in known), os_path)
    rule = None
    if root is not None:
        relative = encode_path(os.path.relpath(os_path, root[1]))[0]
        rule = IgnoreRules(config.watch.ignore).match(relative)
    if rows and rows[0].path_raw:  # the escaped form `ls` prints: look at the real file
        os_path = os_path_of(rows[0].path, rows[0].path_raw)
    disk = _disk_facts(os_path, rows)
    report = {
        "path": path,
        "known": bool(rows),
        "rows": [r.as_dict() for r in rows],
        "root": root[0] if root else None,
        "ignored_by": rule,
        "on_disk": disk,
        "below": {"live": under[0], "missing": under[1]} if any(under) else None,
        "moved_to": _moved_to(hops, now_at, below_now),
    }
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    say(path)
    for row in rows:
        _print_row(row, now)
    if not rows:
        say("  not in the catalog")
        if any(under):
            say(f"  a directory: {under[0]} live and {under[1]} missing file(s) catalogued")
            say(f"    below it (`assetd ls --all {os_path}`)")
        elif rule is None and root is not None and disk.get("regular_file"):
            say(
                f"  under root {root[0]} but not catalogued yet: the daemon records it shortly "
                "if it runs (see `assetd status`); `assetd scan` does it now"
            )
        elif root is not None and disk.get("exists") and not disk.get("regular_file"):
            say("  not a regular file: only files (and symlinks to files) are catalogued")
        if hops:
            _print_moves(hops, now_at, below_now, now)
        elif root is not None and not disk.get("exists") and not any(under):
            say(
                "  moved?     the move history knows no move of it; if it was renamed or moved, "
                f"`assetd logs --path {os_path} --event cache_state.moved` shows where to"
            )
    _print_disk(disk, bool(rows))
    if root is not None and not rows:
        say(f"  root:      below root {root[0]} ({root[1]})")
    if root is None:
        say("  root:      not under any root" + (" of this host" if cat.host else ""))
    if rule is not None:
        where = config.source or "the defaults"
        say(f"  ignored:   yes, by the rule {rule!r} of [watch] ignore ({where}):")
        say("             the daemon never catalogues it, nor touches its row")
    elif root is not None:
        say("  ignored:   no")
    return 0


_HOW = {
    How.RENAME: "a rename seen live",
    How.DIRECTORY: "its directory {directory} was renamed or moved",
    How.BIRTH: "found moved: same inode and birth time",
    How.HASH: "found moved: the hasher read the same content",
}


def _moved_to(
    hops: list[Hop], now_at: list[PathFacts], below: tuple[int, int]
) -> dict[str, object] | None:
    if not hops:
        return None
    state = "directory" if any(below) else "not in the catalog"
    if now_at:
        state = "missing" if now_at[0].is_missing else "live"
    return {"path": hops[-1].to_path, "state": state, "hops": [h.as_dict() for h in hops]}


def _print_moves(
    hops: list[Hop], now_at: list[PathFacts], below: tuple[int, int], now: dt.datetime
) -> None:
    for n, hop in enumerate(hops):
        how = _HOW.get(hop.how, hop.how).format(directory=hop.directory)
        lead = "  moved:     to" if n == 0 else "             then to"
        say(f"{lead} {hop.to_path} at {format_time(hop.moved_at, now)} ({how})")
    final = hops[-1].to_path
    if not now_at and any(below):
        say(f"  now at:    {final}, a directory: {below[0]} live and {below[1]} missing file(s)")
        say(f"             catalogued below it (`assetd ls --all {final}`)")
    elif not now_at:
        say(f"  now at:    {final}, not in the catalog any more (`assetd why {final}`)")
    elif now_at[0].is_missing:
        since = format_time(now_at[0].missing_since, now)
        say(f"  now at:    {final}, MISSING since {since} (`assetd why {final}`)")
    else:
        say(f"  now at:    {final}, live, with its metadata (`assetd why {final}`)")


def _print_row(row: PathFacts, now: dt.datetime) -> None:
    since = row.missing_since if row.is_missing else row.state_changed_at
    state = "MISSING" if row.is_missing else "live"
    say(f"  state:     {state} since {format_time(since, now)}")
    say(f"             {explain_state(row)}")
    r = row.root
    reason = f" ({r.state_reason})" if r.state_reason else ""
    say(f"  root:      {r.name} ({r.path}) on host {r.host or '-'}: {r.state}{reason}")
    hashed = row.hash or "not hashed yet"
    verify = "; needs_verify (changed since hashed, or copied: the hasher re-reads it)"
    say(f"  asset:     #{row.asset_id}, {hashed}{verify if row.needs_verify else ''}")
    say(f"             {row.size} bytes (catalogued size), mtime_ns {row.mtime_ns}")
    if row.move_candidate is not None:
        say(f"  pairing:   may be {row.move_candidate} moved here (same device, inode, size")
        say("             and mtime): its metadata follows only once the hash shows the same")
        say("             content; other content and it stays with that missing path")
    if row.other_count:
        shown = ", ".join(p + (" (missing)" if m else "") for p, m in row.other_paths)
        more = row.other_count - len(row.other_paths)
        say(f"  also at:   {shown}" + (f" (+{more} more)" if more > 0 else ""))
    for info in row.infos:
        meta = json.dumps(info.user_metadata) if info.user_metadata else "no metadata"
        say(f"  info:      #{info.id} '{info.name}', {meta}")  # escaped once, as stored
        tags = ", ".join(f"{t} ({o})" for t, o in info.tags) or "none"
        say(f"    tags:    {tags}")


def _print_disk(disk: dict[str, object], known: bool) -> None:
    if not disk["exists"]:
        say(f"  on disk:   absent ({disk['error']})")
    elif not disk.get("regular_file"):
        say("  on disk:   present, not a regular file")
    elif not known:
        say(f"  on disk:   a file of {disk['size']} bytes")
    elif disk.get("matches_catalog"):
        say("  on disk:   present, same size and mtime as catalogued")
    else:
        say(
            f"  on disk:   present, {disk['size']} bytes, mtime_ns {disk['mtime_ns']}: differs "
            "from the catalog (the daemon records it shortly; `assetd scan` now)"
        )


# --- missing --------------------------------------------------------------------------------
