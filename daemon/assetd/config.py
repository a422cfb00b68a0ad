"""Configuration: TOML -> one frozen, typed :class:`Config`, from one loader (DESIGN §5).

Precedence is flag > environment > file > default:

- the file is ``--config PATH``, else ``$ASSETD_CONFIG``, else ``~/.config/assetd/config.toml``,
  else ``/etc/assetd/config.toml``, else none (a first run needs no file): :func:`find_config_file`;
- ``--root PATH`` adds a root named after its directory to the file's roots: :func:`load_config`;
- the state directory is ``daemon.state_dir``, else ``$STATE_DIRECTORY`` (systemd; the first of
  several), else ``$XDG_STATE_HOME/assetd``, else ``~/.local/state/assetd``; the database is
  ``database.url``, else ``sqlite:///<state_dir>/catalog.db``. Both are resolved against the
  environment once, when the Config is built, and read as ``Config.state_dir`` and
  ``Config.database_url``; nothing later reads the environment.

Every fault is a :class:`~assetd.errors.ConfigError` whose one-line message names the dotted key
(``roots[1].path``, ``watch.quiet_ms``). A root's path need not exist when the config is loaded (a
root on an unplugged disk is unavailable at run time, not a config error); a ``--root`` path must.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from assetd.config_parse import (
    check_api_listen,
    check_table,
    config_error,
    describe_value,
    read_table,
)
from assetd.paths import is_within

SYSTEM_CONFIG_PATH = "/etc/assetd/config.toml"
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
WATCH_BACKENDS = ("auto", "inotify", "fanotify")  # assetd.live.backend.BACKENDS
_OUTSIDE = "the daemon never writes inside a watched root"
_URL_FORMS = "use sqlite:////abs/path/catalog.db (4 slashes) or postgresql+psycopg://user@host/db"
_T = TypeVar("_T")


def _rule(default: _T, **checks: object) -> _T:
    """A field default plus what the loader checks (``min``, ``choices``, ``path``, ...)."""
    return field(default=default, metadata=checks)


@dataclass(frozen=True, slots=True)
class RootConfig:
    name: str = field(metadata={"name": True})  # required
    path: str = field(metadata={"path": True})  # required; absolute, normalised
    tags: tuple[str, ...] = ()
    tags_from_dirs: bool = False
    polling: bool = False
    poll_interval: float = _rule(60.0, min=1.0, max=86400.0)  # seconds
    follow_symlinks: bool = False
    shared: str = ""


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    host: str = ""
    state_dir: str = _rule("", path=True)


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = ""
    pool_size: int = _rule(5, min=1, max=100)


@dataclass(frozen=True, slots=True)
class WatchConfig:
    quiet_ms: int = _rule(50, min=0, max=10_000, ms=True)  # an integer or "50ms", "1s"
    min_quiet_ms: int = _rule(5, min=0, max=10_000, ms=True)  # above quiet_ms: acts as quiet_ms
    max_delay_ms: int = _rule(1000, min=0, max=60_000, ms=True)  # and >= quiet_ms
    queue_size: int = _rule(100000, min=1000, max=10_000_000)
    ignore: tuple[str, ...] = _rule(
        ("*.tmp", "*.part", ".Trash-*", "@eaDir", "#recycle"), component=True
    )
    backend: str = _rule("inotify", choices=WATCH_BACKENDS)  # restart to change


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    interval: float = _rule(3600.0, min=1.0, max=30 * 86400.0)  # seconds


@dataclass(frozen=True, slots=True)
class HashingConfig:
    enabled: bool = True
    workers: int = _rule(1, min=1, max=64)
    max_bytes_per_sec: int = _rule(0, min=1 << 20, max=1 << 40, zero_ok=True)  # 0: unlimited


@dataclass(frozen=True, slots=True)
class LogConfig:
    format: str = _rule("auto", choices=LOG_FORMATS)
    level: str = _rule("info", choices=LOG_LEVELS)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    listen: tuple[str, ...] = ("unix:api.sock",)  # [] = no API
    token_file: str = _rule("", path=True)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration. Build it with :func:`load_config`.

    ``env`` (init only, default ``os.environ``) is what the state directory and database URL are
    resolved against at construction; ``dataclasses.replace`` re-resolves them.
    """

    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    roots: tuple[RootConfig, ...] = ()
    watch: WatchConfig = field(default_factory=WatchConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    hashing: HashingConfig = field(default_factory=HashingConfig)
    log: LogConfig = field(default_factory=LogConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    source: str | None = None
    env: InitVar[Mapping[str, str] | None] = None
    resolved_state_dir: str = field(init=False, default="")
    resolved_database_url: str = field(init=False, default="")

    def __post_init__(self, env: Mapping[str, str] | None) -> None:
        state_dir, _ = _resolve_state_dir(self.daemon.state_dir, os.environ if env is None else env)
        object.__setattr__(self, "resolved_state_dir", state_dir)
        object.__setattr__(
            self, "resolved_database_url", _database_url(self.database.url, state_dir)
        )

    @property
    def state_dir(self) -> str:
        """The absolute state directory (host id, canary, default SQLite catalog)."""
        return self.resolved_state_dir

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL: ``sqlite:////abs/path`` or ``postgresql+psycopg://...``."""
        return self.resolved_database_url

    def root_by_name(self, name: str) -> RootConfig | None:
        """The root called ``name``, or None."""
        return next((root for root in self.roots if root.name == name), None)


def _roots_with_extra(
    file_roots: Sequence[RootConfig], extra_roots: Sequence[str]
) -> tuple[RootConfig, ...]:
    """The file's roots plus ``--root`` ones, checked: unique names, no nesting."""
    labelled = [(f"roots[{i}]", root) for i, root in enumerate(file_roots)]
    for given in extra_roots:
        path = os.path.abspath(given)
        if not os.path.isdir(path):
            raise config_error("--root", f"not a directory: {given}")
        if any(root.path == path for _, root in labelled):
            continue
        name = os.path.basename(path)
        if not name:
            raise config_error(
                "--root", f"cannot name a root after {path!r}; add a [[roots]] table"
            )
        labelled.append(("--root", RootConfig(name=name, path=path)))
    for j, (label, root) in enumerate(labelled):
        for other_label, other in labelled[:j]:
            name_key = f"{label}.name" if label != "--root" else label
            path_key = f"{label}.path" if label != "--root" else label
            if root.name == other.name:
                msg = f"duplicate root name {root.name!r}, also {other_label} ({other.path})"
                raise config_error(name_key, msg)
            inside, contains = is_within(root.path, other.path), is_within(other.path, root.path)
            relation = {(True, False): "lies inside", (False, True): "contains"}.get(
                (inside, contains), "is the same directory as"
            )
            if inside or contains:
                msg = f"{root.path} {relation} root {other.name!r} ({other.path})"
                raise config_error(path_key, f"{msg}; roots must not nest")
    return tuple(root for _, root in labelled)


def _resolve_state_dir(configured: str, env: Mapping[str, str]) -> tuple[str, str]:
    """(absolute state directory, where it came from)."""
    if configured:
        if not os.path.isabs(configured):
            raise config_error("daemon.state_dir", f"must be an absolute path, got {configured!r}")
        return os.path.normpath(configured), "daemon.state_dir"
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        if not os.path.isabs(systemd):
            raise config_error("STATE_DIRECTORY", f"must be an absolute path, got {systemd!r}")
        return os.path.normpath(systemd), "$STATE_DIRECTORY"
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec says to ignore a relative value
        return os.path.join(os.path.normpath(xdg), "assetd"), "$XDG_STATE_HOME"
    home = _home(env)
    if home is None:
        raise config_error("daemon.state_dir", "no $HOME to put the state directory in; set it")
    return os.path.join(home, ".local", "state", "assetd"), "$HOME"


def _home(env: Mapping[str, str]) -> str | None:
    """$HOME, else the password database's home directory, else None."""
    with contextlib.suppress(RuntimeError):
        return (
            os.path.normpath(env["HOME"])
            if os.path.isabs(env.get("HOME", ""))
            else str(Path.home())
        )
    return None


def _database_url(url: str, state_dir: str) -> str:
    """The validated SQLAlchemy URL for ``database.url`` (empty: SQLite in the state directory)."""
    if not url:
        return "sqlite:///" + os.path.join(state_dir, "catalog.db")
    scheme, sep, rest = url.partition("://")
    if url.startswith("sqlite:///"):
        path = _sqlite_path(url)
        if not os.path.isabs(path):
            raise config_error("database.url", f"the SQLite file must be absolute: {_URL_FORMS}")
        return url
    if sep and rest and scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest
    if sep and rest and scheme == "postgresql+psycopg":
        return url
    what = f"scheme {scheme!r}" if sep else "no scheme"
    raise config_error("database.url", f"unsupported database URL ({what}); {_URL_FORMS}")


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///") :].split("?", 1)[0]


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> str | None:
    """The config file to load: ``--config``, ``$ASSETD_CONFIG``, the user's, the system's, or None.

    An explicit ``--config`` or ``$ASSETD_CONFIG`` that does not exist is an error; the two default
    locations are simply skipped when absent.
    """
    for key, given in (("--config", explicit), ("ASSETD_CONFIG", env.get("ASSETD_CONFIG"))):
        if given:
            if not os.path.isfile(given):
                raise config_error(key, f"no such file: {given}")
            return os.path.abspath(given)
    home = _home(env)
    candidates = [SYSTEM_CONFIG_PATH]
    if home:
        candidates.insert(0, os.path.join(home, ".config", "assetd", "config.toml"))
    return next((path for path in candidates if os.path.isfile(path)), None)


def _read_toml(path: str) -> dict[str, object]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise config_error(path, f"TOML syntax error: {err}") from None
    except RecursionError:
        raise config_error(path, "TOML nested too deeply (arrays, tables or dotted keys)") from None
    except UnicodeDecodeError:
        raise config_error(path, "not valid UTF-8") from None
    except OSError as err:
        raise config_error(path, f"cannot read: {err.strerror or err}") from None


def load_config(
    path: str | None, *, extra_roots: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Config:
    """Read, validate and resolve the configuration.

    ``path`` is the file from :func:`find_config_file` (None: defaults only); ``extra_roots`` the
    ``--root`` values; ``env`` defaults to ``os.environ``. Raises :class:`ConfigError`.
    """
    env = os.environ if env is None else env
    data = _read_toml(path) if path is not None else {}
    classes = (
        DaemonConfig,
        DatabaseConfig,
        WatchConfig,
        ReconcileConfig,
        HashingConfig,
        LogConfig,
        ApiConfig,
    )
    sections = {cls.__name__.removesuffix("Config").lower(): cls for cls in classes}
    check_table(data, "", [*sections, "roots"])
    parts: dict[str, Any] = {
        name: cls(**read_table(cls, data.get(name, {}), name)) for name, cls in sections.items()
    }
    watch: WatchConfig = parts["watch"]
    if watch.max_delay_ms < watch.quiet_ms:
        raise config_error(
            "watch.max_delay_ms",
            f"must be at least watch.quiet_ms ({watch.quiet_ms}), got {watch.max_delay_ms}",
        )
    raw_roots = data.get("roots", [])
    if not isinstance(raw_roots, list):
        raise config_error("roots", f"expected [[roots]] tables, got {describe_value(raw_roots)}")
    file_roots = [
        RootConfig(**read_table(RootConfig, r, f"roots[{i}]")) for i, r in enumerate(raw_roots)
    ]
    config = Config(roots=_roots_with_extra(file_roots, extra_roots), source=path, env=env, **parts)
    _check_outside_roots(config, env, len(file_roots))
    # the default socket under a long state_dir is not the user's doing: the daemon logs
    # api.unavailable for it instead of refusing to start
    api_table = data.get("api")
    explicit = isinstance(api_table, dict) and "listen" in api_table
    check_api_listen(
        config.api.listen, config.api.token_file, config.state_dir, strict_paths=explicit
    )
    return config


def _check_outside_roots(config: Config, env: Mapping[str, str], file_roots: int) -> None:
    """No root at ``/``; the state directory and a SQLite catalog must not lie inside any root,
    nor a root inside the state directory (``file_roots``: how many roots the file named, to
    name the key of the others ``--root``)."""
    _, origin = _resolve_state_dir(config.daemon.state_dir, env)
    db_path = _sqlite_path(config.database_url) if config.database_url.startswith("sqlite") else ""
    for i, root in enumerate(config.roots):
        key = f"roots[{i}].path" if i < file_roots else "--root"
        if os.path.realpath(root.path) == "/":
            msg = "a root at / would watch the whole system, the state directory included"
            raise config_error(key, f"{msg}; name the directories to watch")
        if is_within(root.path, config.state_dir):
            raise config_error(
                key,
                f"{root.path} lies inside the state directory {config.state_dir} (from {origin}); "
                "keep watched files out of it",
            )
        where = f"lies inside root {root.name!r} ({root.path}); {_OUTSIDE}"
        if is_within(config.state_dir, root.path):
            raise config_error("daemon.state_dir", f"{config.state_dir} (from {origin}) {where}")
        if db_path and is_within(db_path, root.path):
            raise config_error("database.url", f"the SQLite database {db_path} {where}")


def default_config(env: Mapping[str, str] | None = None) -> Config:
    """The all-defaults Config: what a first run with no file and no ``--root`` uses."""
    return load_config(None, env=env)
