"""``assetd roots move NAME NEW_PATH``: a library moved to a new disk keeps its catalog.

The move is refused while this host's daemon runs (its host lock is held: exit 75), unless
``--force``: a running daemon still has the old path in its config, so its next reconcile would
mark every moved path missing (metadata is kept, and they come back once the config names the
new path and the daemon reloads). The command does not edit the config file: it prints the
line to change.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from assetd import log
from assetd.catalog.engine import sqlite_path, translate_db_errors
from assetd.catalog.hostlock_pg import AdvisoryHostLock
from assetd.catalog.overview import daemon_rows
from assetd.catalog.relocate import compare_trees, load_rows, relocate_root, rows_under
from assetd.catalog.roots import count_root_paths, delete_root, host_roots
from assetd.catalog.states import utcnow
from assetd.catalog_access import catalog, prepare_state_dir
from assetd.commands._common import confirm
from assetd.config import Config
from assetd.errors import AssetdError, HostLocked, UsageError
from assetd.fsutil import IgnoreRules, encode_path
from assetd.hostlock import CatalogFileLock, HostLock
from assetd.paths import is_under

if TYPE_CHECKING:
    from assetd.catalog_access import Catalog

_log = log.get_logger(__name__)


def config_path_line(source: str, name: str) -> tuple[int, str] | None:
    """``(line number, line)`` of the ``path = ...`` line of root ``name`` in a TOML config
    written with ``[[roots]]`` tables; None when it cannot be found that way."""
    try:
        with open(source, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    tables: list[dict[str, tuple[int, str]]] = []
    current: dict[str, tuple[int, str]] | None = None
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            current = {} if re.fullmatch(r"\[\[\s*roots\s*\]\]", stripped) else None
            if current is not None:
                tables.append(current)
            continue
        key = re.match(r"(name|path)\s*=", stripped)
        if current is not None and key:
            current[key.group(1)] = (number, line)
    for table in tables:
        if "name" not in table or "path" not in table:
            continue
        try:
            if tomllib.loads(table["name"][1].strip()).get("name") == name:
                return table["path"]
        except tomllib.TOMLDecodeError:
            continue
    return None


def _check_place(config: Config, others: list[tuple[str, str]], old: str, new: str) -> None:
    if new == old:
        raise UsageError(f"the root is at {new} already")
    if is_under(new, old) or is_under(old, new):
        raise UsageError(f"{new} and the root's current path {old} must not contain each other")
    for name, path in others:
        if is_under(new, path) or is_under(path, new):
            raise UsageError(f"{new} and root {name!r} ({path}) would nest; roots must not nest")
    db = sqlite_path(config.database_url)
    for what, place in (("the state directory", config.state_dir), ("the catalog", db)):
        if place and is_under(os.path.abspath(place), new):
            raise UsageError(f"{what} ({place}) lies inside {new}; it must not lie in a root")


def cmd_roots_move(config: Config, args: argparse.Namespace) -> int:
    new = os.path.normpath(os.path.abspath(args.new_path))
    if not os.path.exists(new):
        raise AssetdError(f"{new} does not exist")
    if not os.path.isdir(new):
        raise AssetdError(f"{new} is not a directory")
    if args.sample < 0:
        raise UsageError("--sample must be 0 or more")
    lock = HostLock(prepare_state_dir(config))
    db_path = sqlite_path(config.database_url)
    catalog_lock = CatalogFileLock(db_path) if db_path else None
    if not args.force:
        try:
            lock.acquire()
            if catalog_lock is not None:  # a daemon with another state_dir on this catalog
                catalog_lock.acquire()
        except HostLocked as err:
            lock.release()
            raise _refusal(err) from None
    try:
        return _move(config, args, new)
    finally:
        if catalog_lock is not None:
            catalog_lock.release()
        lock.release()


def _refusal(err: HostLocked) -> HostLocked:
    return HostLocked(
        f"{err}: stop it first (systemctl stop assetd), move, set the new path in the "
        "config, start it; or pass --force (the running daemon then marks the old paths "
        "missing until its config names the new path)"
    )


def _move(config: Config, args: argparse.Namespace, new: str) -> int:
    with catalog(config, write=True) as cat, translate_db_errors(cat.url):
        if args.force or sqlite_path(cat.url):  # SQLite: the catalog's lock file was taken
            return _move_in(cat, config, args, new)
        pg_lock = AdvisoryHostLock(cat.engine, cat.host)  # a daemon of any state directory
        try:
            pg_lock.acquire()
        except HostLocked as err:
            raise _refusal(err) from None
        try:
            return _move_in(cat, config, args, new)
        finally:
            pg_lock.release()


def _move_in(cat: Catalog, config: Config, args: argparse.Namespace, new: str) -> int:
    from assetd.hashing.digest import hash_file

    with cat.session() as s:
        mine = host_roots(s, cat.host)
        root = next((r for r in mine if r.name == args.name), None)
        if root is None:
            raise UsageError(f"no root named {args.name!r} on this host ({cat.host})")
        root_id, old = root.id, root.path
        others = [(r.name, r.path) for r in mine if r.id != root_id]
        others += [(r.name, r.path) for r in config.roots if r.name != args.name]
        _check_place(config, others, old, new)
        new_key = encode_path(new)[0]
        if rows_under(s, root_id, new_key):
            raise AssetdError(
                f"root {args.name!r} has rows below {new} already (left from an earlier "
                "path): run `assetd cleanup` or move it elsewhere"
            )
        rows = load_rows(s, root_id, old)
    rc = config.root_by_name(args.name)
    comparison = compare_trees(
        rows,
        old,
        new_key,
        ignore=IgnoreRules(config.watch.ignore),
        follow_symlinks=rc.follow_symlinks if rc else False,
        hasher=hash_file,
        sample=args.sample,
    )
    if comparison.difference is not None:
        raise AssetdError(
            f"refusing to move root {args.name!r}: {new} does not hold the same files as "
            f"the catalog: {comparison.difference}"
        )
    st = os.stat(new)
    with cat.session() as s, s.begin():
        moved = relocate_root(
            s, root_id, old, new_key, device=st.st_dev, is_mount=os.path.ismount(new)
        )
    _log.info("root.moved", root=args.name, old_path=old, new_path=new, rewritten=moved)
    summary = {
        "root": args.name,
        "old_path": old,
        "new_path": new,
        "rewritten": moved,
        "live": comparison.live,
        "missing": moved - comparison.live,
        "hashes_checked": comparison.hashes_checked,
        "other_mtime": comparison.other_mtime,
        "skipped": len(comparison.problems),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(
        f"moved root {args.name}: {old} -> {new}, {moved} path(s) rewritten "
        f"({comparison.live} live, {moved - comparison.live} missing), "
        f"{comparison.hashes_checked} hash(es) checked"
    )
    if comparison.other_mtime:
        print(
            f"  {comparison.other_mtime} file(s) have another mtime in {new} (copied without "
            "keeping times; cp -a or rsync -a keep them): the daemon re-reads them once, "
            "keeping their metadata"
        )
    _print_config_advice(config, args.name, old, new)
    return 0


def _print_config_advice(config: Config, name: str, old: str, new: str) -> None:
    line = config_path_line(config.source, name) if config.source else None
    if line is not None:
        print(f"now set the root's path in {config.source}, line {line[0]}:")
        print(f"    path = {json.dumps(new)}")
        print(f"  (it reads: {line[1].strip()})")
    elif config.root_by_name(name) is not None:  # from --root
        print(f"now pass --root {new} instead of --root {old}", end="")
        base = os.path.basename(new) or new
        if base != name:
            print(
                f"; its name would then be {base!r}, not {name!r}: name the root in a config "
                f'file ([[roots]] name = "{name}", path = {json.dumps(new)}) to keep it'
            )
        else:
            print()
    else:
        print(f'now set path = {json.dumps(new)} in the [[roots]] table named "{name}"')
    print(
        "then start (or reload) the daemon; until its config names the new path it would mark "
        "these files missing (nothing is lost: they come back once it does)"
    )


def cmd_roots_retire(config: Config, args: argparse.Namespace) -> int:
    """Remove a decommissioned root and its path rows, explicitly (DESIGN §4): this host's, or
    with ``--host HOST`` a decommissioned host's (several hosts on one catalog, DESIGN §7).

    Its assets, infos and tags stay in the catalog (another path or a later `cleanup` decides
    their fate). This host's root must no longer be configured, or the next scan would bring it
    back; another host's is refused while that host's daemon says it runs (its heartbeat is
    fresh: it would re-create the root)."""
    with catalog(config, write=True) as cat, translate_db_errors(cat.url):
        host = args.host or cat.host
        if host == cat.host and config.root_by_name(args.name) is not None:
            raise UsageError(
                f"root {args.name!r} is still configured: remove it from the config first"
            )
        with cat.session() as s:
            if host != cat.host:
                _refuse_if_running(s, host, args.name)
            row = next((r for r in host_roots(s, host) if r.name == args.name), None)
            if row is None:
                raise UsageError(f"no root named {args.name!r} for host {host!r} in the catalog")
            root_id, root_path = row.id, row.path
            paths = count_root_paths(s, root_id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("roots retire removes the root's path rows: pass --yes")
            whose = "" if host == cat.host else f" of host {host!r}"
            if not confirm(
                f"retire root {args.name!r}{whose} ({root_path}) and its {paths} path rows?"
            ):
                print("nothing changed")
                return 1
        with cat.session() as s, s.begin():
            pathless = delete_root(s, root_id)
    _log.info(
        "root.retired", root=args.name, host=host, path=root_path, paths=paths, pathless=pathless
    )
    print(
        f"retired root {args.name!r}"
        + ("" if host == cat.host else f" of host {host!r}")
        + f" ({root_path}): {paths} path row(s) removed; "
        "its assets, infos and tags stay in the catalog"
        + (
            f" ({pathless} with no other path: `assetd cleanup` counts them from now)"
            if pathless
            else ""
        )
    )
    return 0


def _refuse_if_running(session: Session, host: str, name: str) -> None:
    now = utcnow()
    for d in daemon_rows(session, host=host):
        if d.is_running(now):
            raise HostLocked(
                f"host {host!r}'s daemon runs (pid {d.pid}, heartbeat "
                f"{d.heartbeat_age(now):.0f} s ago): stop it and remove root {name!r} from its "
                "config first; `roots retire --host` is for a decommissioned host"
            )
