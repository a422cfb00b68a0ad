"""``assetd ls`` (catalogued files) and ``missing`` (missing paths grouped by root and directory,
with ages), for people (aligned text) and scripts (``--json``)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

from assetd.catalog.listing import MissingRow, list_cache_states, missing_rows
from assetd.catalog.overview import RootRow, root_rows
from assetd.catalog.sqltext import utcnow
from assetd.catalog_reader import read_catalog
from assetd.commands._common import duration_arg, in_root_ids
from assetd.commands._format import format_age, human_size, printable, say
from assetd.config import Config
from assetd.fsutil import encode_path


def cmd_ls(config: Config, args: argparse.Namespace) -> int:
    with read_catalog(config) as cat:  # a SQLite catalog without importing SQLAlchemy
        root_ids = None
        if args.in_root:
            root_ids = in_root_ids(cat.reader, cat.host, args.in_root)
        rows = list_cache_states(
            cat.reader,
            roots=root_ids,
            include_missing=args.all,
            only_missing=args.missing,
            under=encode_path(os.path.abspath(args.under))[0] if args.under else None,
        )
    for row in rows:
        if args.json:
            print(json.dumps(row.as_dict()))
        elif args.long:
            state = "missing" if row.is_missing else "live"
            print(f"{state}\t{row.size}\t{row.hash or '-'}\t{printable(row.path)}")
        else:
            say(row.path)
    return 0


def _root_label(root: RootRow, host: str) -> str:
    on = f" on host {root.host}" if root.host != host else ""
    return f"{root.name} ({root.path}){on}"


def cmd_missing(config: Config, args: argparse.Namespace) -> int:
    """Missing paths grouped by root and directory, with how long they have been missing."""
    now = utcnow()
    since = now - dt.timedelta(seconds=duration_arg(args.since, "--since")) if args.since else None
    with read_catalog(config) as cat:
        all_roots = root_rows(cat.reader)
        ids = in_root_ids(cat.reader, cat.host, args.in_root) if args.in_root else None
        rows = missing_rows(cat.reader, roots=ids, since=since)
        host = cat.host
    roots = {r.id: r for r in all_roots}
    groups: dict[int, dict[str, list[MissingRow]]] = {}
    for row in rows:
        directory = row.path.rpartition("/")[0] or "/"
        groups.setdefault(row.root_id, {}).setdefault(directory, []).append(row)
    if args.json:
        print(json.dumps(_missing_json(groups, roots, now)))
        return 0
    if not rows:
        say("no missing paths" + (f" since {args.since} ago" if args.since else ""))
        return 0
    cells: dict[int, tuple[str, str, str, str]] = {}  # by row id: name, age, reason, size
    for dirs in groups.values():
        for directory, files in dirs.items():
            for f in files:
                name = f.path[len(directory) + 1 :] if directory != "/" else f.path[1:]
                since = f.missing_since
                age = format_age((now - since).total_seconds()) if since else "?"
                cells[id(f)] = (name, age, f.state_reason or "", human_size(f.size))
    head = ("NAME", "MISSING FOR", "REASON", "SIZE")
    w = [max(len(c[i]) for c in [head, *cells.values()]) for i in range(4)]

    def line(c: tuple[str, str, str, str]) -> str:
        return f"    {c[0]:<{w[0]}}  {c[1]:>{w[1]}}  {c[2]:<{w[2]}}  {c[3]:>{w[3]}}"

    print(line(head))
    for root_id, dirs in groups.items():
        count = sum(len(files) for files in dirs.values())
        say(f"{_root_label(roots[root_id], host)}: {count} missing")
        for directory in sorted(dirs):
            say(f"  {directory}/")
            for f in dirs[directory]:
                say(line(cells[id(f)]))
    say(f"{len(rows)} missing path(s) in {len(groups)} root(s)")
    return 0


def _missing_json(
    groups: dict[int, dict[str, list[MissingRow]]], roots: dict[int, RootRow], now: dt.datetime
) -> dict[str, object]:
    out = []
    for root_id, dirs in groups.items():
        r = roots[root_id]
        out.append(
            {
                "name": r.name,
                "host": r.host,
                "path": r.path,
                "count": sum(len(files) for files in dirs.values()),
                "directories": [
                    {
                        "path": d,
                        "files": [
                            {
                                "path": f.path,
                                "size": f.size,
                                "hash": f.hash,
                                "missing_since": f.missing_since.isoformat()
                                if f.missing_since
                                else None,
                                "age_s": round((now - f.missing_since).total_seconds(), 1)
                                if f.missing_since
                                else None,
                                "state_reason": f.state_reason,
                            }
                            for f in dirs[d]
                        ],
                    }
                    for d in sorted(dirs)
                ],
            }
        )
    return {"count": sum(int(str(r["count"])) for r in out), "roots": out}
