"""Logging: the only place structlog (and the stdlib root logger) is configured (DESIGN §6).

Call :func:`configure_logging` once at start (and again on reload; it replaces, never adds). Logs go
to stderr: one JSON object per line (``timestamp``, ``level``, ``event``, ``logger``, the event's
fields, ``exception`` as one string) when stderr is not a TTY, or structlog's readable console
output on a TTY. Every structlog event goes through the stdlib root logger, and one handler with
structlog's ``ProcessorFormatter`` renders both those and the records of watchdog, SQLAlchemy,
Alembic and ``warnings``, so in JSON mode every line is JSON.

structlog (and the asyncio it imports) is loaded on first use only: :func:`get_logger` returns a
proxy, and the handler builds its formatter on the first record, so a command that logs nothing
(``status``, ``ls``) does not pay for the import.

Modules log with ``log = get_logger(__name__)`` and stable event names::

    log.info("cache_state.missing", count=len(paths), paths=sample_paths(paths))
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict, Processor

from assetd.config import LOG_FORMATS, LOG_LEVELS

PATH_SAMPLE = 20  # paths named in one per-batch event (journald drops past 10,000 lines in 30 s)

# Library loggers and the level they are held at (their INFO is noise at our INFO).
_LIBRARY_LEVELS = {
    "sqlalchemy": logging.WARNING,
    "alembic": logging.WARNING,  # left at the root's level when that is debug
    "watchdog": logging.WARNING,
}


class _Handler(logging.StreamHandler[TextIO]):
    """Our root handler; the class marks it so a second configure replaces it."""


class _Formatter(logging.Formatter):
    """structlog's ``ProcessorFormatter`` for ``fmt``, built (structlog imported) on the first
    record."""

    def __init__(self, fmt: str, tty: bool) -> None:
        super().__init__()
        self._fmt_name, self._tty = fmt, tty
        self._real: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        if self._real is None:
            self._real = _processor_formatter(self._fmt_name, self._tty)
        return self._real.format(record)


class _LazyLogger:
    """What :func:`get_logger` returns: imports structlog (and applies a configuration that
    was waiting for it) on its first use, then hands every attribute to structlog's logger."""

    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: Any = None

    def __getattr__(self, attr: str) -> Any:
        real = self._real
        if real is None:
            real = self._real = _structlog().stdlib.get_logger(self._name)
        return getattr(real, attr)


_pending: bool = False  # configure_logging ran before structlog was imported


def _structlog() -> Any:
    """The structlog module, configured as the last :func:`configure_logging` asked."""
    global _pending
    import structlog

    if _pending:
        _pending = False
        _configure_structlog()
    return structlog


def _shared_processors() -> list[Processor]:
    """What every event gets, from structlog or from a stdlib logger."""
    import structlog

    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def _key_order(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, event, logger first, so a JSON line reads well in the journal."""
    if isinstance(event_dict.get("event"), str):
        event_dict["event"] = event_dict["event"].rstrip("\n")  # warnings end with a newline
    head = {
        k: event_dict.pop(k) for k in ("timestamp", "level", "event", "logger") if k in event_dict
    }
    return {**head, **event_dict}


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send all logging to ``stream`` (default: ``sys.stderr`` now) at ``level``, as ``fmt``.

    ``fmt`` is ``auto`` (JSON unless the stream is a TTY), ``json`` or ``console``; ``level`` one
    of debug, info, warning, error. Idempotent: a second call replaces the first's handler.
    """
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    stream = sys.stderr if stream is None else stream
    tty = _isatty(stream)
    if fmt == "auto":
        fmt = "console" if tty else "json"

    handler = _Handler(stream)
    handler.setFormatter(_Formatter(fmt, tty))

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric)
    for name, library_level in _LIBRARY_LEVELS.items():
        quiet = name != "alembic" or level != "debug"
        logging.getLogger(name).setLevel(max(library_level, numeric) if quiet else logging.NOTSET)
    logging.captureWarnings(True)

    global _pending
    if "structlog" in sys.modules:  # already loaded (the daemon, tests): configure it now
        _pending = False
        _configure_structlog()
    else:
        _pending = True


def _configure_structlog() -> None:
    import structlog

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        cache_logger_on_first_use=False,
    )


def _processor_formatter(fmt: str, tty: bool) -> logging.Formatter:
    import structlog

    renderer: list[Processor]
    if fmt == "json":
        renderer = [
            structlog.processors.format_exc_info,  # traceback -> "exception" string: one line
            structlog.processors.UnicodeDecoder(),
            _key_order,
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=tty)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )


def reset_logging() -> None:
    """Undo :func:`configure_logging` (for tests): structlog defaults, our handler removed."""
    global _pending
    _pending = False
    if "structlog" in sys.modules:
        sys.modules["structlog"].reset_defaults()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    root.setLevel(logging.WARNING)
    for name in _LIBRARY_LEVELS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger for a module: ``log = get_logger(__name__)``.

    Safe at import time: the logger follows whatever :func:`configure_logging` set last.
    """
    if name is None:
        name = str(sys._getframe(1).f_globals.get("__name__", "assetd"))
    return cast("structlog.stdlib.BoundLogger", _LazyLogger(name))


def sample_paths(paths: Iterable[str], limit: int = PATH_SAMPLE) -> list[str]:
    """The first ``limit`` paths: the ``paths`` field of a per-batch event, next to its count."""
    return list(itertools.islice(paths, limit))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
