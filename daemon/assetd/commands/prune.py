"""``assetd prune`` (mark what lies outside the roots missing) and ``cleanup`` (the only hard
delete, on explicit request)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from assetd import log
from assetd.catalog.cleanup import (
    CandidateRow,
    CleanupPlan,
    cleanup_unreferenced_assets,
    describe_candidates,
    plan_cleanup,
)
from assetd.catalog.engine import translate_db_errors
from assetd.catalog.prune import (
    count_cache_states_outside_prefixes,
    mark_missing_outside_prefixes_safely,
)
from assetd.catalog.states import utcnow
from assetd.catalog_access import catalog
from assetd.commands._common import confirm, duration_arg, require_roots
from assetd.commands._format import format_time, human_size
from assetd.config import Config
from assetd.errors import AssetdError, UsageError

_log = log.get_logger(__name__)


def cmd_prune(config: Config, args: argparse.Namespace) -> int:
    require_roots(config)
    # a dry run changes nothing: read-only, root rows included, no catalog created
    with catalog(config, write=not args.dry_run) as cat:
        if not args.dry_run:
            cat.register_roots()
        prefixes = [r.path for r in config.roots]
        roots = cat.host_root_ids()
        if args.dry_run:
            with translate_db_errors(cat.url), cat.session() as s:
                n = count_cache_states_outside_prefixes(s, prefixes, roots=roots)
            print(f"would mark {n} cache state(s) outside the configured roots missing")
            return 0
        count = mark_missing_outside_prefixes_safely(cat.sessions, prefixes, roots=roots)
    if count is None:
        raise AssetdError("prune failed; see the log")
    print(f"marked {count} cache state(s) outside the configured roots missing")
    return 0


def _plan_lines(plan: CleanupPlan, older_than: str, include_unavailable: bool) -> list[str]:
    """The lines after the count: what has no path at all, what is kept back and why."""
    lines = []
    if plan.pathless:
        lines.append(
            f"  {plan.pathless} of them have no path at all (their root was retired), "
            f"for longer than {older_than}"
        )
    for (root, reason), n in sorted(plan.held.items()):
        lines.append(
            f"  kept: {n} asset(s) of root {root} missing only because the root is away "
            f"({reason}): they come back with it"
        )
    if plan.held and not include_unavailable:
        lines.append("  (--include-unavailable counts them too)")
    return lines


def _candidate_lines(rows: list[CandidateRow]) -> list[str]:
    """The table of what a cleanup would delete: asset id, missing since, size, last path."""
    if not rows:
        return []
    now = utcnow()
    table = [("ASSET", "MISSING SINCE", "SIZE", "LAST PATH")]
    for r in rows:
        since = format_time(r.missing_since, now) if r.missing_since else "?"
        path = r.last_path if r.last_path is not None else "(no path: its root was retired)"
        table.append((str(r.asset_id), since, human_size(r.size), path))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    return [f"  {a:>{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in table]


def _plan_json(
    plan: CleanupPlan, rows: list[CandidateRow], older_than: str, *, dry_run: bool
) -> dict[str, object]:
    return {
        "dry_run": dry_run,
        "older_than": older_than,
        "count": len(plan.ids),
        "pathless": plan.pathless,
        "assets": [r.as_dict() for r in rows],
        "kept": [
            {"root": root, "reason": reason, "assets": n}
            for (root, reason), n in sorted(plan.held.items())
        ],
    }


def cmd_cleanup(config: Config, args: argparse.Namespace) -> int:
    older_than = duration_arg(args.older_than, "--older-than", allow_zero=True)
    delta = dt.timedelta(seconds=older_than)
    every = bool(args.include_unavailable)
    # a dry run changes nothing: read-only, no catalog or host id created
    with catalog(config, write=not args.dry_run) as cat, translate_db_errors(cat.url):
        roots = cat.host_root_ids()
        with cat.session() as s:
            plan = plan_cleanup(s, roots=roots, older_than=delta, include_unavailable=every)
        ids = plan.ids
        if args.dry_run:
            with cat.session() as s:
                rows = describe_candidates(s, ids)
            if args.json:
                print(json.dumps(_plan_json(plan, rows, args.older_than, dry_run=True)))
                return 0
            print(f"would delete {len(ids)} asset(s) missing for longer than {args.older_than}")
            for line in _candidate_lines(rows) + _plan_lines(plan, args.older_than, every):
                print(line)
            return 0
        if not ids:
            if args.json:
                print(json.dumps(_plan_json(plan, [], args.older_than, dry_run=False)))
                return 0
            print(f"deleted 0 asset(s) missing for longer than {args.older_than}")
            for line in _plan_lines(plan, args.older_than, every):
                print(line)
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("cleanup deletes assets and their metadata: pass --yes")
            if not confirm(f"delete {len(ids)} asset(s) and their infos and tags?"):
                print("nothing deleted")
                return 1
        with cat.session() as s, s.begin():
            deleted = cleanup_unreferenced_assets(
                s, roots=roots, older_than=delta, include_unavailable=every
            )
    _log.info("cleanup.applied", count=deleted, older_than=args.older_than)
    if args.json:
        done = _plan_json(plan, [], args.older_than, dry_run=False)
        print(json.dumps({**done, "count": deleted}))
        return 0
    print(f"deleted {deleted} asset(s) missing for longer than {args.older_than}")
    for line in _plan_lines(plan, args.older_than, every):
        print(line)
    return 0
