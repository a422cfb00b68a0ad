"""``assetd hash``: hash what needs it once (the content rules apply), or print the backlog."""

from __future__ import annotations

import argparse
import json
import sys
import time

from assetd import log
from assetd.catalog.engine import translate_db_errors
from assetd.catalog.overview import root_ids_by_name
from assetd.catalog_access import catalog
from assetd.commands._common import Progress, require_roots
from assetd.commands._format import human_size
from assetd.config import Config
from assetd.errors import UsageError
from assetd.hashing.run import HashRunResult, hash_pending

_log = log.get_logger(__name__)


class HashProgress(Progress):
    """``hashing: files, bytes, rate, ETA`` on stderr, only when it is a TTY."""

    def update(self, files: int, size: int, files_total: int, bytes_total: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-6)
        rate = size / elapsed
        if rate > 0:
            eta = (bytes_total - size) / rate
        else:
            eta = (files_total - files) * elapsed / max(files, 1)
        minutes, seconds = divmod(int(eta), 60)
        self.stream.write(
            f"\r\x1b[Khashing: {files:,}/{files_total:,} files, "
            f"{human_size(size)}/{human_size(bytes_total)}, {human_size(rate)}/s, "
            f"ETA {minutes // 60}:{minutes % 60:02d}:{seconds:02d}"
        )
        self.stream.flush()


def format_hash(result: HashRunResult) -> str:
    rate = result.bytes / result.duration_s if result.duration_s > 0 else 0.0
    recorded = ", ".join(
        f"{n} {name}"
        for name, n in sorted(result.outcomes.items())
        if name not in ("changed", "vanished", "unreadable", "stale", "failed")
    )
    line = (
        f"hashed {result.files} file(s), {human_size(result.bytes)} in "
        f"{result.duration_s:.2f} s ({human_size(rate)}/s)" + (f": {recorded}" if recorded else "")
    )
    skipped = {
        k: result.outcomes.get(k, 0)
        for k in ("changed", "vanished", "unreadable", "stale", "failed")
    }
    if any(skipped.values()):
        line += "; not recorded: " + ", ".join(f"{n} {k}" for k, n in skipped.items() if n)
    left_files, left_bytes = result.backlog_after
    if left_files:
        line += f"; {left_files} file(s), {human_size(left_bytes)} left (run again later)"
    return line


def cmd_hash(config: Config, args: argparse.Namespace) -> int:
    """Hash every file of this host's configured roots that needs it (one pass), or with
    ``--dry-run`` print the backlog: files and bytes still to hash."""
    require_roots(config)
    names = [r.name for r in config.roots]
    if args.in_root and args.in_root not in names:
        raise UsageError(f"no configured root named {args.in_root!r}")
    wanted = [args.in_root] if args.in_root else names
    # a dry run changes nothing: read-only, no catalog, host id or root rows created
    with catalog(config, write=not args.dry_run) as cat:
        if args.dry_run:
            from assetd.catalog.content import hashing_backlog

            with translate_db_errors(cat.url), cat.session() as s:
                files, size = hashing_backlog(s, roots=root_ids_by_name(s, cat.host, wanted))
            if args.json:
                print(json.dumps({"files": files, "bytes": size}))
            else:
                print(f"hashing backlog: {files} file(s), {human_size(size)} ({size} bytes)")
            return 0
        specs = [r for r in cat.register_roots() if r.name in wanted]
        progress = HashProgress(sys.stderr)
        with translate_db_errors(cat.url):
            result = hash_pending(cat.sessions, specs, progress=progress.update)
        progress.done()
    _log.info("hash.finished", **result.as_dict())
    if args.json:
        print(json.dumps(result.as_dict()))
    elif result.backlog_before == (0, 0) and not result.files:
        print(f"nothing to hash: every live file of {len(specs)} root(s) is hashed")
    else:
        print(format_hash(result))
    return 0
