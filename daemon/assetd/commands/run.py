"""``assetd run``: the foreground daemon (the service itself is :mod:`assetd.service`)."""

from __future__ import annotations

import argparse
import os

from assetd import log
from assetd.commands._common import require_roots
from assetd.config import Config, find_config_file, load_config

_log = log.get_logger(__name__)


def cmd_run(config: Config, args: argparse.Namespace) -> int:
    """The foreground daemon (systemd Type=notify)."""
    from assetd.service import Service

    def reload_config() -> Config:
        return load_config(find_config_file(args.config, os.environ), extra_roots=args.roots)

    require_roots(config)
    return Service(config, reload_config).run()
