"""``assetd scan``: reconcile every configured root once and print a summary."""

from __future__ import annotations

import argparse
import json
import sys

from assetd import log
from assetd.catalog.engine import translate_db_errors
from assetd.catalog_access import catalog
from assetd.commands._common import Progress, require_roots
from assetd.config import Config
from assetd.reconcile import ReconcileResult, sync_cache_states_with_filesystem

_log = log.get_logger(__name__)


def format_scan(result: ReconcileResult) -> str:
    line = (
        f"scanned {result.roots} root(s) in {result.duration_s:.2f} s: "
        f"{result.new} new, {result.missing} missing, {result.restored} restored, "
        f"{result.changed} changed, {result.unchanged} unchanged, {result.skipped} skipped"
    )
    if result.unavailable:
        line += f"; unavailable: {', '.join(result.unavailable)}"
    return line


def cmd_scan(config: Config, args: argparse.Namespace) -> int:
    require_roots(config)
    with catalog(config, write=True) as cat:
        specs = cat.register_roots()
        progress = Progress(sys.stderr)
        with translate_db_errors(cat.url), cat.session() as session:
            result = sync_cache_states_with_filesystem(session, specs, progress=progress)
        progress.done()
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(format_scan(result))
        for p in result.problems[:5]:
            print(f"  skipped {p.kind}: {p.path} ({p.detail})")
    return 0
