"""``assetd check-config`` and ``db upgrade``: the configuration and the schema."""

from __future__ import annotations

import argparse
import os
import stat
import sys

from assetd import log
from assetd.catalog.engine import (
    describe_url,
    make_engine,
    ping_server,
    sqlite_path,
    translate_db_errors,
)
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.catalog_access import prepare_state_dir
from assetd.config import Config
from assetd.errors import EXIT_CONFIG, EXIT_OK, AssetdError, ConfigError
from assetd.paths import is_under
from assetd.statedir import check_catalog_file, usable_state_dir

_log = log.get_logger(__name__)


def cmd_check_config(config: Config, args: argparse.Namespace) -> int:
    """Check what the other commands would fail on, writing nothing; each problem is one line
    on stderr. Exit 78 for a config problem (no roots, a root that is not a directory, an
    unusable state directory), else 69 when the database cannot be reached, else 0 (a missing
    root is only a warning: the disk may be unplugged)."""
    errors: list[AssetdError] = []

    def problem(err: AssetdError) -> None:
        errors.append(err)
        print(f"assetd: {err}", file=sys.stderr)

    state_ok = True
    try:
        usable_state_dir(config, create=False)  # checks, writes nothing
    except ConfigError as err:
        problem(err)
        state_ok = False
    if not config.roots:
        problem(ConfigError("roots", "no roots configured: add [[roots]] or pass --root PATH"))
    for i, root in enumerate(config.roots):
        what, fatal = _root_problem(root.path)
        if what and fatal:
            problem(ConfigError(f"roots[{i}].path", what))
        elif what:
            print(f"assetd: warning: roots[{i}].path: {what}", file=sys.stderr)
    database = describe_url(config.database_url)
    db_file = sqlite_path(config.database_url)
    if db_file is not None:
        if state_ok or not is_under(db_file, config.state_dir):  # (else: said already)
            try:
                check_catalog_file(db_file)
            except ConfigError as err:
                problem(err)
    elif getattr(args, "offline", False):
        database += " (not checked: --offline)"
    else:
        try:
            ping_server(config.database_url)
            database += " (reachable)"
        except AssetdError as err:
            problem(err)
    if errors:
        codes = {err.exit_code for err in errors}
        return EXIT_CONFIG if EXIT_CONFIG in codes else min(codes)
    print(f"config ok: {config.source or '(no file: defaults)'}")
    print(f"  database: {database}")
    print(f"  state_dir: {config.state_dir}")
    for r in config.roots:
        mode = "polling" if r.polling else "watching"
        print(f"  root {r.name}: {r.path} ({mode})")
    return EXIT_OK


def _root_problem(path: str) -> tuple[str, bool]:
    """What is wrong with a root's path for ``check-config``, and whether it is fatal: not a
    directory (fatal), missing (a warning), unreadable (fatal); ``("", False)`` when fine."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return (
            f"{path} does not exist (a disk not plugged in? the daemon marks the root "
            "unavailable until it appears)",
            False,
        )
    except OSError as err:
        return f"cannot look at {path}: {err.strerror or err}", True
    if stat.S_ISREG(st.st_mode):
        return f"{path} is a regular file, not a directory", True
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory", True
    if not os.access(path, os.R_OK | os.X_OK):
        return f"cannot read {path} as uid {os.getuid()}", True
    return "", False


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
