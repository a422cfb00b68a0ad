"""``assetd logs [FILE|-]``: assetd's log lines from a file, stdin or the journal
(``journalctl -u assetd -o cat``), filtered and rendered by :mod:`assetd.commands.logview`."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator

from assetd.commands import logview
from assetd.config import Config
from assetd.config_parse import parse_duration
from assetd.errors import AssetdError, ConfigError, UsageError


def parse_since(text: str, now: dt.datetime) -> dt.datetime:
    """``--since``: a duration back from ``now`` ("10m", "2h") or an ISO time (local if naive)."""
    try:
        return now - dt.timedelta(seconds=parse_duration(text, "--since"))
    except ConfigError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--since: expected a duration such as 10m or a time such as 2024-05-01T10:00, "
            f"got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def journal_command(args: argparse.Namespace, since: dt.datetime | None) -> list[str]:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        raise UsageError(
            "no log FILE given and journalctl is not available: pass a FILE, or - to read "
            "stdin (e.g. assetd run 2>>assetd.log, then assetd logs assetd.log)"
        )
    cmd = [journalctl, *(["--user"] if args.user else []), "-u", args.unit, "-o", "cat"]
    cmd.append("--no-pager")
    if since is not None:
        cmd += ["--since", since.astimezone().strftime("%Y-%m-%d %H:%M:%S")]
    return cmd + (["-f"] if args.follow else [])


@contextlib.contextmanager
def _log_source(args: argparse.Namespace, since: dt.datetime | None) -> Iterator[Iterable[str]]:
    if args.file == "-":
        yield iter(sys.stdin.readline, "")
        return
    if args.file:
        try:
            f = open(args.file, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as err:
            raise AssetdError(f"cannot read {args.file}: {err.strerror or err}") from None
        with f:
            yield (
                logview.follow_lines(f, threading.Event().wait, path=args.file)
                if (args.follow)
                else f
            )
        return
    proc = subprocess.Popen(
        journal_command(args, since), stdout=subprocess.PIPE, text=True, errors="replace"
    )
    assert proc.stdout is not None
    try:
        yield iter(proc.stdout.readline, "")
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.stdout.close()
        code = proc.wait()
    if code not in (0, -15):
        raise AssetdError(f"journalctl exited with {code}")


def cmd_logs(config: Config, args: argparse.Namespace) -> int:
    """assetd's JSON log lines, filtered, as aligned text (coloured on a TTY) or JSON."""
    since = parse_since(args.since, dt.datetime.now(dt.UTC)) if args.since else None
    path = args.path
    if path and not path.startswith("/") and not any(c in path for c in "*?["):
        path = os.path.abspath(path)
    root_cfg = config.root_by_name(args.in_root) if args.in_root else None
    flt = logview.LogFilter(
        since=since,
        min_level=args.level,
        events=tuple(args.event or ()),
        path=path,
        root=args.in_root,
        root_path=root_cfg.path if root_cfg else None,
    )
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    day = None
    read = 0
    with _log_source(args, since) as lines:
        for line in logview.parse_lines(lines):
            read += 1
            if not logview.matches(line, flt):
                continue
            if args.json:
                print(logview.as_json(line), flush=args.follow)
                continue
            today = logview.day_of(line)
            if today is not None and today != day:
                print(f"-- {today.isoformat()} --", flush=args.follow)
                day = today
            print(logview.render(line, colour=colour), flush=args.follow)
    if not read and not args.file:
        raise AssetdError(_empty_journal(args))
    return 0


def _empty_journal(args: argparse.Namespace) -> str:
    """One line: the journal had nothing for the unit, where we looked, what else to read."""
    look = " ".join(["journalctl", *(["--user"] if args.user else []), "-u", args.unit])
    since = f" since {args.since}" if args.since else ""
    return (
        f"no log lines in the journal of unit {args.unit}{since} ({look}): pass a FILE (e.g. "
        "assetd run 2>>assetd.log; assetd logs assetd.log), - for stdin"
        + ("" if args.user else ", or --user for the user service")
    )
