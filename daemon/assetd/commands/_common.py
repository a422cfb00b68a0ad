"""What several commands share: argument checks, root ids by name, a progress line."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from assetd.catalog.overview import root_ids_by_name
from assetd.config import Config
from assetd.config_parse import parse_duration
from assetd.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from assetd.catalog.sqltext import TextReader


def require_roots(config: Config) -> None:
    if not config.roots:
        raise ConfigError("roots", "no roots configured: add [[roots]] or pass --root PATH")


def duration_arg(text: str, flag: str, *, allow_zero: bool = False) -> float:
    """A duration given on the command line (``--older-than 7d``), in seconds."""
    try:
        return parse_duration(text, flag, allow_zero=allow_zero)
    except ConfigError as err:  # a command-line value: a usage error, not a config one
        raise UsageError(str(err).removeprefix("config: ")) from None


def confirm(question: str) -> bool:
    """Ask ``question [y/N]`` on the terminal; only "y" or "yes" is yes. End of input (Ctrl-D)
    is no: a newline ends the prompt's line, and no traceback."""
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


def in_root_ids(session: TextReader, host: str, name: str) -> list[int]:
    """The ids of the roots ``--in-root NAME`` means; a usage error when there is none."""
    ids = root_ids_by_name(session, host, [name])
    if not ids:
        raise UsageError(f"no root named {name!r} in the catalog")
    return ids


class Progress:
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
