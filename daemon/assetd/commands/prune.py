"""``assetd prune`` (mark what lies outside the roots missing) and ``cleanup`` (the only hard
delete, on explicit request)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from assetd import log
from assetd.catalog.cleanup import CleanupPlan, cleanup_unreferenced_assets, plan_cleanup
from assetd.catalog.engine import translate_db_errors
from assetd.catalog.prune import (
    count_cache_states_outside_prefixes,
    mark_missing_outside_prefixes_safely,
)
from assetd.catalog_access import catalog
from assetd.commands._common import duration_arg, require_roots
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


def cmd_cleanup(config: Config, args: argparse.Namespace) -> int:
    older_than = duration_arg(args.older_than, "--older-than")
    delta = dt.timedelta(seconds=older_than)
    every = bool(args.include_unavailable)
    # a dry run changes nothing: read-only, no catalog or host id created
    with catalog(config, write=not args.dry_run) as cat, translate_db_errors(cat.url):
        roots = cat.host_root_ids()
        with cat.session() as s:
            plan = plan_cleanup(s, roots=roots, older_than=delta, include_unavailable=every)
        ids = plan.ids
        if args.dry_run or not ids:
            verb = "would delete" if args.dry_run else "deleted"
            print(f"{verb} {len(ids)} asset(s) missing for longer than {args.older_than}")
            for line in _plan_lines(plan, args.older_than, every):
                print(line)
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("cleanup deletes assets and their metadata: pass --yes")
            answer = input(f"delete {len(ids)} asset(s) and their infos and tags? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        with cat.session() as s, s.begin():
            deleted = cleanup_unreferenced_assets(
                s, roots=roots, older_than=delta, include_unavailable=every
            )
    _log.info("cleanup.applied", count=deleted, older_than=args.older_than)
    print(f"deleted {deleted} asset(s) missing for longer than {args.older_than}")
    for line in _plan_lines(plan, args.older_than, every):
        print(line)
    return 0
