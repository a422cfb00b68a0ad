"""The bodies of the one-shot commands. Each takes the loaded Config and parsed arguments,
writes its result to stdout, and returns an exit code; errors are raised as AssetdError."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.cleanup import cleanup_unreferenced_assets, find_cleanup_candidates
from assetd.catalog.engine import describe_url, make_engine, translate_db_errors
from assetd.catalog.listing import list_cache_states
from assetd.catalog.models import Root
from assetd.catalog.prune import (
    count_cache_states_outside_prefixes,
    mark_missing_outside_prefixes_safely,
)
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.catalog_access import catalog, prepare_state_dir
from assetd.config import Config, find_config_file, load_config
from assetd.config_parse import parse_duration
from assetd.errors import AssetdError, ConfigError, UsageError
from assetd.fsutil import encode_path
from assetd.hashing.run import HashRunResult, hash_pending
from assetd.reconcile import ReconcileResult, sync_cache_states_with_filesystem

_log = log.get_logger(__name__)


def _require_roots(config: Config) -> None:
    if not config.roots:
        raise ConfigError("roots", "no roots configured: add [[roots]] or pass --root PATH")


class _Progress:
    """A one-line progress display on stderr, only when it is a TTY."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.last = 0.0
        self.started = time.monotonic()

    def __call__(self, files: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        rate = files / max(now - self.started, 1e-6)
        self.stream.write(f"\r\x1b[Kscanning: {files:,} files ({rate:,.0f}/s)")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


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
    _require_roots(config)
    with catalog(config, write=True) as cat:
        specs = cat.register_roots()
        progress = _Progress(sys.stderr)
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


def cmd_ls(config: Config, args: argparse.Namespace) -> int:
    with catalog(config, write=False) as cat, translate_db_errors(cat.url), cat.session() as s:
        root_ids = None
        if args.in_root:
            root_ids = _root_ids_by_name(s, cat.host, args.in_root)
        rows = list_cache_states(
            s,
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
            print(f"{state}\t{row.size}\t{row.hash or '-'}\t{row.path}")
        else:
            print(row.path)
    return 0


def _root_ids_by_name(session: Session, host: str, name: str) -> list[int]:
    query = select(Root.id).where(Root.name == name)
    if host:
        query = query.where(Root.host == host)
    ids = list(session.execute(query).scalars())
    if not ids:
        raise UsageError(f"no root named {name!r} in the catalog")
    return ids


def cmd_prune(config: Config, args: argparse.Namespace) -> int:
    _require_roots(config)
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


def cmd_cleanup(config: Config, args: argparse.Namespace) -> int:
    try:
        older_than = parse_duration(args.older_than, "--older-than")
    except ConfigError as err:  # a command-line value: a usage error, not a config one
        raise UsageError(str(err).removeprefix("config: ")) from None
    delta = dt.timedelta(seconds=older_than)
    with catalog(config, write=True) as cat, translate_db_errors(cat.url):
        roots = cat.host_root_ids()
        with cat.session() as s:
            ids = find_cleanup_candidates(s, roots=roots, older_than=delta)
        if args.dry_run or not ids:
            verb = "would delete" if args.dry_run else "deleted"
            print(f"{verb} {len(ids)} asset(s) missing for longer than {args.older_than}")
            return 0
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("cleanup deletes assets and their metadata: pass --yes")
            answer = input(f"delete {len(ids)} asset(s) and their infos and tags? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing deleted")
                return 1
        with cat.session() as s, s.begin():
            deleted = cleanup_unreferenced_assets(s, roots=roots, older_than=delta)
    _log.info("cleanup.applied", count=deleted, older_than=args.older_than)
    print(f"deleted {deleted} asset(s) missing for longer than {args.older_than}")
    return 0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1000 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class _HashProgress(_Progress):
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
            f"{human_bytes(size)}/{human_bytes(bytes_total)}, {human_bytes(rate)}/s, "
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
        f"hashed {result.files} file(s), {human_bytes(result.bytes)} in "
        f"{result.duration_s:.2f} s ({human_bytes(rate)}/s)" + (f": {recorded}" if recorded else "")
    )
    skipped = {
        k: result.outcomes.get(k, 0)
        for k in ("changed", "vanished", "unreadable", "stale", "failed")
    }
    if any(skipped.values()):
        line += "; not recorded: " + ", ".join(f"{n} {k}" for k, n in skipped.items() if n)
    left_files, left_bytes = result.backlog_after
    if left_files:
        line += f"; {left_files} file(s), {human_bytes(left_bytes)} left (run again later)"
    return line


def _configured_root_ids(session: Session, host: str, names: list[str]) -> list[int]:
    query = select(Root.id).where(Root.host == host, Root.name.in_(names))
    return list(session.execute(query).scalars())


def cmd_hash(config: Config, args: argparse.Namespace) -> int:
    """Hash every file of this host's configured roots that needs it (one pass), or with
    ``--dry-run`` print the backlog: files and bytes still to hash."""
    _require_roots(config)
    names = [r.name for r in config.roots]
    if args.in_root and args.in_root not in names:
        raise UsageError(f"no configured root named {args.in_root!r}")
    wanted = [args.in_root] if args.in_root else names
    with catalog(config, write=True) as cat:
        if args.dry_run:  # a dry run changes nothing, root rows included
            from assetd.catalog.content import hashing_backlog

            with translate_db_errors(cat.url), cat.session() as s:
                files, size = hashing_backlog(s, roots=_configured_root_ids(s, cat.host, wanted))
            if args.json:
                print(json.dumps({"files": files, "bytes": size}))
            else:
                print(f"hashing backlog: {files} file(s), {human_bytes(size)} ({size} bytes)")
            return 0
        specs = [r for r in cat.register_roots() if r.name in wanted]
        progress = _HashProgress(sys.stderr)
        with translate_db_errors(cat.url):
            result = hash_pending(cat.sessions, specs, progress=progress.update)
        progress.done()
    _log.info("hash.finished", **result.as_dict())
    print(json.dumps(result.as_dict()) if args.json else format_hash(result))
    return 0


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    """The foreground daemon (systemd Type=notify)."""
    from assetd.service import Service

    def reload_config() -> Config:
        return load_config(find_config_file(args.config, os.environ), extra_roots=args.roots)

    _require_roots(config)
    return Service(config, reload_config).run()


def cmd_check_config(config: Config, args: argparse.Namespace) -> int:
    print(f"config ok: {config.source or '(no file: defaults)'}")
    print(f"  database: {describe_url(config.database_url)}")
    print(f"  state_dir: {config.state_dir}")
    for r in config.roots:
        mode = "polling" if r.polling else "watching"
        print(f"  root {r.name}: {r.path} ({mode})")
    return 0


def cmd_db_upgrade(config: Config, args: argparse.Namespace) -> int:
    url = config.database_url
    with translate_db_errors(url):
        prepare_state_dir(config)
        engine = make_engine(url)
        try:
            done = ensure_schema(engine, Upgrade.ALWAYS)
        finally:
            engine.dispose()
    print(f"catalog schema {done}")
    return 0
