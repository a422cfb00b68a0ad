"""The command line's parser: every subcommand, its flags and its help (argparse).

Imported only when a command line is parsed, so ``assetd --version`` skips argparse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

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


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[_Parser]
else:
    _SubParsers = argparse._SubParsersAction

Fill = Callable[[argparse.ArgumentParser], None]
"""Adds one subcommand's own arguments (its parser was made with its name and help only)."""


class _Subcommands(_SubParsers):
    """Subcommands listed with their one-line help, each parser's own arguments added only when
    the command line names it (:meth:`__call__`), or all at once (:func:`_fill_all`): building
    every subcommand's arguments is most of what ``assetd --help`` took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fills: dict[str, Fill] = {}

    def command(
        self,
        name: str,
        fill: Fill,
        help_text: str,
        *,
        func: CommandRef | None = None,
        described: bool = True,
    ) -> None:
        """``name`` with its help line (and, ``described``, as its ``--help``'s description)."""
        p = self.add_parser(name, help=help_text, description=help_text if described else None)
        if func is not None:
            p.set_defaults(func=func)
        self.fills[name] = fill

    def fill(self, name: str) -> None:
        fill = self.fills.pop(name, None)
        if fill is not None:
            fill(self.choices[name])

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if values and isinstance(values, list) and isinstance(values[0], str):
            self.fill(values[0])
        super().__call__(parser, namespace, values, option_string)


def _subcommands(parser: argparse.ArgumentParser, dest: str) -> _Subcommands:
    sub = parser.add_subparsers(
        dest=dest, metavar="COMMAND", parser_class=_Parser, action=_Subcommands
    )
    sub.required = True
    return cast(_Subcommands, sub)


def _fill_all(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, _Subcommands):
            for name in list(action.fills):
                action.fill(name)
            for sub in action.choices.values():
                _fill_all(sub)


def build_parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The whole command line. ``lazy``: each subcommand's own arguments are added only when a
    command line names it (what :func:`parse_args` uses); else every one now (for the docs'
    checks, which read them all)."""
    parser = _Parser(
        prog="assetd",
        description="Keep an asset catalog true to the files under a set of roots.",
    )
    parser.add_argument("--version", action="version", version=f"assetd {__version__}")
    _global_options(parser, suffix="")
    sub = _subcommands(parser, "command")
    for name, func, fill, help_text in _COMMANDS:
        sub.command(name, fill, help_text, func=func, described=name != "db")
    if not lazy:
        _fill_all(parser)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    """--config and --root after the subcommand (as every subcommand takes them)."""
    _global_options(p, suffix="_sub")


def _json(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--json", action="store_true", help=help_text)


def _scan(p: argparse.ArgumentParser) -> None:
    _common(p)
    _json(p, "print the summary as JSON")


def _ls(p: argparse.ArgumentParser) -> None:
    _common(p)
    state = p.add_mutually_exclusive_group()
    state.add_argument("--missing", action="store_true", help="only missing files")
    state.add_argument("--all", action="store_true", help="live and missing files")
    p.add_argument("--in-root", metavar="NAME", help="only files of this root")
    p.add_argument("-l", "--long", action="store_true", help="state, size, hash and path")
    _json(p, "one JSON object per file")
    p.add_argument("under", nargs="?", metavar="DIR", help="only files below this directory")


def _prune(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="count, change nothing")


def _cleanup(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "--older-than",
        required=True,
        metavar="DURATION",
        help="e.g. 30d, 12h; 0s: every asset missing now",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
    )
    _json(p, "print the result as JSON")
    p.add_argument(
        "--include-unavailable",
        action="store_true",
        help="also count paths missing only because their root is unplugged or covered",
    )
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _hash(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="print the backlog, hash nothing")
    p.add_argument("--in-root", metavar="NAME", help="only files of this root")
    _json(p, "print the summary as JSON")


def _check_config(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--offline", action="store_true", help="do not try to reach the database server")


def _db(p: argparse.ArgumentParser) -> None:
    _common(p)
    _subcommands(p, "db_command").command(
        "upgrade",
        _common,
        "create the catalog schema or upgrade it to this version",
        func="admin:cmd_db_upgrade",
        described=False,
    )


def _status(p: argparse.ArgumentParser) -> None:
    _common(p)
    _json(p, "print the report as JSON")
    p.add_argument("--all-hosts", action="store_true", help="every host's daemon and roots")


def _why(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("path", metavar="PATH", help="a file (or directory) path")
    _json(p, "print the report as JSON")


def _missing(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--in-root", metavar="NAME", help="only paths of this root")
    p.add_argument("--since", metavar="DURATION", help="only paths gone in the last DURATION")
    _json(p, "print the groups as JSON")


def _logs(p: argparse.ArgumentParser) -> None:
    _common(p)
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


def _roots(p: argparse.ArgumentParser) -> None:
    _common(p)
    sub = _subcommands(p, "roots_command")
    sub.command(
        "move",
        _roots_move,
        "a root's directory moved (a new disk): check NEW_PATH holds the same files, "
        "then rewrite every path of the root in one transaction",
        func="roots:cmd_roots_move",
    )
    sub.command(
        "retire",
        _roots_retire,
        "remove a decommissioned root (no longer configured) and its path rows; its assets, "
        "infos and tags stay",
        func="roots:cmd_roots_retire",
    )


def _roots_move(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("name", metavar="NAME", help="the root's name")
    p.add_argument("new_path", metavar="NEW_PATH", help="where its files are now")
    p.add_argument("--force", action="store_true", help="move even while this host's daemon runs")
    p.add_argument(
        "--sample",
        type=int,
        default=20,
        metavar="N",
        help="hashed files whose content is checked (default: 20)",
    )
    _json(p, "print the summary as JSON")


def _roots_retire(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("name", metavar="NAME", help="the root's name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument(
        "--host",
        metavar="HOST",
        default="",
        help="the host whose root it is (default: this host): a decommissioned host's root",
    )


_COMMANDS: tuple[tuple[str, CommandRef | None, Fill, str], ...] = (
    ("run", "run:cmd_run", _common, "run the daemon in the foreground (systemd Type=notify)"),
    ("scan", "scan:cmd_scan", _scan, "reconcile every configured root once and print a summary"),
    ("ls", "ls:cmd_ls", _ls, "list catalogued files (live ones unless asked)"),
    (
        "prune",
        "prune:cmd_prune",
        _prune,
        "mark this host's files outside the configured roots missing (deletes nothing)",
    ),
    (
        "cleanup",
        "prune:cmd_cleanup",
        _cleanup,
        "hard-delete assets whose every path has been missing for longer than DURATION",
    ),
    (
        "hash",
        "hash:cmd_hash",
        _hash,
        "hash the files that need it (new or changed) once, and apply the content rules",
    ),
    (
        "status",
        "status:cmd_status",
        _status,
        "the daemon, each root, the hashing backlog, and anything needing attention",
    ),
    (
        "why",
        "why:cmd_why",
        _why,
        "everything the catalog knows of one path, and why it is in that state",
    ),
    (
        "missing",
        "ls:cmd_missing",
        _missing,
        "list missing paths by root and directory, with how long they have been missing",
    ),
    (
        "logs",
        "logs:cmd_logs",
        _logs,
        "show assetd's log lines from a FILE, stdin (-) or the journal, filtered and aligned",
    ),
    ("roots", None, _roots, "manage the roots in the catalog"),
    (
        "check-config",
        "admin:cmd_check_config",
        _check_config,
        "check the configuration, the roots, the state directory and the database; print it",
    ),
    ("db", None, _db, "catalog database maintenance"),
)
"""Every subcommand in ``--help``'s order: name, command function, its arguments, help line."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = build_parser(lazy=True).parse_args(argv)
    args.config = getattr(args, "config_sub", None) or args.config
    args.roots = [*args.roots, *getattr(args, "roots_sub", [])]
    return args
