"""The command line's parser: every subcommand, its flags and its help (argparse).

Imported only when a command line is parsed, so ``assetd --version`` skips argparse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from assetd import __version__
from assetd.errors import EXIT_USAGE

if TYPE_CHECKING:
    from assetd.config import Config

Command = Callable[["Config", argparse.Namespace], int]
CommandRef = str
"""``"module:function"`` under :mod:`assetd.commands`, imported only when that command runs, so
``--help``, ``--version`` and the read-only commands load only what they use."""


def _global_options(parser: argparse.ArgumentParser, *, suffix: str) -> None:
    """--config and --root, accepted before or after the subcommand.

    The subcommand's copies write to other attributes (``suffix``) with no default, because
    argparse would otherwise let the subparser's defaults overwrite what came before it.
    """
    default = argparse.SUPPRESS if suffix else None
    parser.add_argument(
        "--config",
        dest=f"config{suffix}",
        metavar="PATH",
        default=default,
        help="config file (default: $ASSETD_CONFIG, ~/.config/assetd/config.toml, "
        "/etc/assetd/config.toml)",
    )
    parser.add_argument(
        "--root",
        dest=f"roots{suffix}",
        metavar="PATH",
        action="append",
        default=argparse.SUPPRESS if suffix else [],
        help="a root to use, named after its directory (repeatable)",
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="assetd",
        description="Keep an asset catalog true to the files under a set of roots.",
    )
    parser.add_argument("--version", action="version", version=f"assetd {__version__}")
    _global_options(parser, suffix="")
    common = _Parser(add_help=False)
    _global_options(common, suffix="_sub")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, func: CommandRef, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    add("run", "run:cmd_run", "run the daemon in the foreground (systemd Type=notify)")

    p = add("scan", "scan:cmd_scan", "reconcile every configured root once and print a summary")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = add("ls", "ls:cmd_ls", "list catalogued files (live ones unless asked)")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--missing", action="store_true", help="only missing files")
    state.add_argument("--all", action="store_true", help="live and missing files")
    p.add_argument("--in-root", metavar="NAME", help="only files of this root")
    p.add_argument("-l", "--long", action="store_true", help="state, size, hash and path")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("under", nargs="?", metavar="DIR", help="only files below this directory")

    p = add(
        "prune",
        "prune:cmd_prune",
        "mark this host's files outside the configured roots missing (deletes nothing)",
    )
    p.add_argument("--dry-run", action="store_true", help="count, change nothing")

    p = add(
        "cleanup",
        "prune:cmd_cleanup",
        "hard-delete assets whose every path has been missing for longer than DURATION",
    )
    p.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="e.g. 30d, 12h; 0s: every asset missing now",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--include-unavailable",
        action="store_true",
        help="also count paths missing only because their root is unplugged or covered",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = add(
        "hash",
        "hash:cmd_hash",
        "hash the files that need it (new or changed) once, and apply the content rules",
    )
    p.add_argument("--dry-run", action="store_true", help="print the backlog, hash nothing")
    p.add_argument("--in-root", metavar="NAME", help="only files of this root")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    _add_operations(sub, add, common)

    p = add(
        "check-config",
        "admin:cmd_check_config",
        "check the configuration, the roots, the state directory and the database; print it",
    )
    p.add_argument("--offline", action="store_true", help="do not try to reach the database server")

    db = sub.add_parser("db", help="catalog database maintenance", parents=[common])
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND", parser_class=_Parser)
    db_sub.required = True
    up = db_sub.add_parser(
        "upgrade", parents=[common], help="create the catalog schema or upgrade it to this version"
    )
    up.set_defaults(func="admin:cmd_db_upgrade")
    return parser


def _add_operations(
    sub: argparse._SubParsersAction[_Parser],
    add: Callable[[str, CommandRef, str], argparse.ArgumentParser],
    common: _Parser,
) -> None:
    """status, why, missing, logs and roots (DESIGN §6): the operator's commands."""

    p = add(
        "status",
        "status:cmd_status",
        "the daemon, each root, the hashing backlog, and anything needing attention",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--all-hosts", action="store_true", help="every host's daemon and roots")

    p = add(
        "why",
        "why:cmd_why",
        "everything the catalog knows of one path, and why it is in that state",
    )
    p.add_argument("path", metavar="PATH", help="a file (or directory) path")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add(
        "missing",
        "ls:cmd_missing",
        "list missing paths by root and directory, with how long they have been missing",
    )
    p.add_argument("--in-root", metavar="NAME", help="only paths of this root")
    p.add_argument("--since", metavar="DURATION", help="only paths gone in the last DURATION")
    p.add_argument("--json", action="store_true", help="print the groups as JSON")

    p = add(
        "logs",
        "logs:cmd_logs",
        "show assetd's log lines from a FILE, stdin (-) or the journal, filtered and aligned",
    )
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE|-",
        help="a log file, - for stdin (default: journalctl -u assetd)",
    )
    p.add_argument("--since", metavar="WHEN", help="a duration back (10m, 2h) or an ISO time")
    p.add_argument(
        "--level",
        choices=("debug", "info", "warning", "error", "critical"),
        type=str.lower,
        help="this level and above",
    )
    p.add_argument(
        "--event",
        metavar="GLOB",
        action="append",
        help="events matching this glob (the whole name: 'cache_state.*'); a plain word "
        "matches the events it begins: 'batch' is batch.* and batch (repeatable)",
    )
    p.add_argument(
        "--path",
        metavar="PATH",
        help="lines naming this path (or below it; a glob), in their paths sample",
    )
    p.add_argument("--in-root", metavar="NAME", help="lines about this root")
    p.add_argument("--json", action="store_true", help="the matching JSON lines, unchanged")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading new lines")
    p.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the output (auto: on a TTY)",
    )
    p.add_argument("--unit", default="assetd", help="the systemd unit (default: assetd)")
    p.add_argument("--user", action="store_true", help="the user service's journal")

    roots = sub.add_parser(
        "roots",
        parents=[common],
        help="manage the roots in the catalog",
        description="manage the roots in the catalog",
    )
    roots_sub = roots.add_subparsers(dest="roots_command", metavar="COMMAND", parser_class=_Parser)
    roots_sub.required = True
    help_text = (
        "a root's directory moved (a new disk): check NEW_PATH holds the same files, "
        "then rewrite every path of the root in one transaction"
    )
    mv = roots_sub.add_parser("move", parents=[common], help=help_text, description=help_text)
    mv.set_defaults(func="roots:cmd_roots_move")
    mv.add_argument("name", metavar="NAME", help="the root's name")
    mv.add_argument("new_path", metavar="NEW_PATH", help="where its files are now")
    mv.add_argument("--force", action="store_true", help="move even while this host's daemon runs")
    mv.add_argument(
        "--sample",
        type=int,
        default=20,
        metavar="N",
        help="hashed files whose content is checked (default: 20)",
    )
    mv.add_argument("--json", action="store_true", help="print the summary as JSON")
    help_text = (
        "remove a decommissioned root (no longer configured) and its path rows; its assets, "
        "infos and tags stay"
    )
    rt = roots_sub.add_parser("retire", parents=[common], help=help_text, description=help_text)
    rt.set_defaults(func="roots:cmd_roots_retire")
    rt.add_argument("name", metavar="NAME", help="the root's name")
    rt.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rt.add_argument(
        "--host",
        metavar="HOST",
        default="",
        help="the host whose root it is (default: this host): a decommissioned host's root",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    args.config = getattr(args, "config_sub", None) or args.config
    args.roots = [*args.roots, *getattr(args, "roots_sub", [])]
    return args
