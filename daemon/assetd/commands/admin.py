"""``assetd check-config`` and ``db upgrade``: the configuration and the schema."""

from __future__ import annotations

import argparse

from assetd import log
from assetd.catalog.engine import describe_url, make_engine, translate_db_errors
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.catalog_access import prepare_state_dir
from assetd.config import Config
from assetd.statedir import usable_state_dir

_log = log.get_logger(__name__)


def cmd_check_config(config: Config, args: argparse.Namespace) -> int:
    usable_state_dir(config, create=False)  # checks, writes nothing
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
