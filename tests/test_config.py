"""assetd.config: the loader, its errors, search precedence, state directory and host id."""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
from pathlib import Path

import pytest

from assetd import config as config_mod
from assetd.config import (
    Config,
    DaemonConfig,
    DatabaseConfig,
    HashingConfig,
    LogConfig,
    ReconcileConfig,
    RootConfig,
    WatchConfig,
    default_config,
    find_config_file,
    load_config,
)
from assetd.config_parse import parse_duration
from assetd.errors import EXIT_CONFIG, ConfigError
from assetd.statedir import host_id, read_host_id

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose state directory is a fresh temporary directory."""
    return {"STATE_DIRECTORY": str(tmp_path / "state"), "HOME": str(tmp_path / "home")}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load_text(tmp_path: Path, text: str, env: dict[str, str]) -> Config:
    return load_config(write(tmp_path, text), env=env)


# --- defaults and the example file -------------------------------------------------------------


def test_no_file_and_no_roots_is_the_defaults(env: dict[str, str]) -> None:
    config = load_config(None, env=env)
    assert config == default_config(env)
    assert config.roots == ()
    assert config.source is None
    assert config.watch == WatchConfig()
    assert config.watch.ignore == ("*.tmp", "*.part", ".Trash-*", "@eaDir", "#recycle")
    assert (config.watch.quiet_ms, config.watch.max_delay_ms) == (50, 1000)
    assert config.reconcile.interval == 3600.0
    assert config.log == LogConfig(format="auto", level="info")
    assert config.state_dir == env["STATE_DIRECTORY"]
    assert config.database_url == f"sqlite:///{env['STATE_DIRECTORY']}/catalog.db"


def test_empty_file_is_the_defaults(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path, "")
    config = load_config(path, env=env)
    assert dataclasses.replace(config, source=None, env=env) == default_config(env)
    assert config.source == path


def test_example_file_parses_and_documents_the_defaults(env: dict[str, str]) -> None:
    config = load_config(str(EXAMPLE), env=env)
    assert config.daemon == DaemonConfig()
    assert config.database == DatabaseConfig()
    assert config.watch == WatchConfig()
    assert config.reconcile == ReconcileConfig()
    assert config.hashing == HashingConfig()
    assert config.log == LogConfig()
    (root,) = config.roots
    assert (root.name, root.path, root.tags) == ("models", "/srv/models", ("models",))
    assert dataclasses.replace(root, name="x", path="/x", tags=()) == RootConfig(
        name="x", path="/x"
    )


def test_example_file_names_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    sections = (DaemonConfig, DatabaseConfig, RootConfig, WatchConfig, ReconcileConfig)
    for cls in (*sections, HashingConfig, LogConfig):
        for field in dataclasses.fields(cls):
            assert f"\n{field.name} = " in text, field.name


# --- a full file -------------------------------------------------------------------------------

FULL = """
[daemon]
host = "render-01"
state_dir = "/var/lib/assetd/"

[database]
url = "postgresql://assetd@db.example/assets"
pool_size = 10

[[roots]]
name = "models"
path = "/srv/models/"
tags = ["models", "ml"]
tags_from_dirs = true

[[roots]]
name = "nas"
path = "/mnt/nas"
polling = true
poll_interval = "5m"
follow_symlinks = true
shared = "studio-nas"

[watch]
quiet_ms = 0
max_delay_ms = 0
queue_size = 1000
ignore = []

[reconcile]
interval = "1h30m"

[hashing]
enabled = false
workers = 4
max_bytes_per_sec = 50_000_000

[log]
format = "JSON"
level = "debug"
"""


def test_full_file(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_text(tmp_path, FULL, env)
    assert config.daemon == DaemonConfig(host="render-01", state_dir="/var/lib/assetd")
    assert config.state_dir == "/var/lib/assetd"
    assert config.database_url == "postgresql+psycopg://assetd@db.example/assets"
    assert config.database.pool_size == 10
    assert config.roots == (
        RootConfig(name="models", path="/srv/models", tags=("models", "ml"), tags_from_dirs=True),
        RootConfig(
            name="nas",
            path="/mnt/nas",
            polling=True,
            poll_interval=300.0,
            follow_symlinks=True,
            shared="studio-nas",
        ),
    )
    assert config.root_by_name("nas") is config.roots[1]
    assert config.root_by_name("nope") is None
    assert config.watch == WatchConfig(quiet_ms=0, max_delay_ms=0, queue_size=1000, ignore=())
    assert config.reconcile.interval == 5400.0
    assert config.hashing == HashingConfig(enabled=False, workers=4, max_bytes_per_sec=50_000_000)
    assert config.log == LogConfig(format="json", level="debug")


def test_config_is_frozen(env: dict[str, str]) -> None:
    config = load_config(None, env=env)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.roots = ()  # type: ignore[misc]


def test_root_path_need_not_exist(tmp_path: Path, env: dict[str, str]) -> None:
    text = f'[[roots]]\nname = "usb"\npath = "{tmp_path}/unplugged"\n'
    assert load_text(tmp_path, text, env).roots[0].path == f"{tmp_path}/unplugged"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/a/catalog.db", "sqlite:////var/lib/a/catalog.db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:pw@h:5432/db", "postgresql+psycopg://u:pw@h:5432/db"),
    ],
)
def test_database_urls(tmp_path: Path, env: dict[str, str], url: str, expected: str) -> None:
    assert load_text(tmp_path, f'[database]\nurl = "{url}"\n', env).database_url == expected


# --- invalid configs: one line, naming the key -------------------------------------------------

ROOT = '[[roots]]\nname = "models"\npath = "/srv/models"\n'

INVALID = [
    # (id, TOML text, the key the message must name)
    ("unknown-section", "[deamon]\n", "deamon"),
    ("unknown-key", '[daemon]\nhots = "x"\n', "daemon.hots"),
    ("unknown-root-key", ROOT + "polling_interval = 5\n", "roots[0].polling_interval"),
    ("unknown-key-newline", '"bad\\nkey" = 1\n', "bad\\nkey"),
    ("bool-is-not-int", "[watch]\nquiet_ms = true\n", "watch.quiet_ms"),
    ("string-is-not-int", '[watch]\nqueue_size = "10"\n', "watch.queue_size"),
    ("float-is-not-int", "[hashing]\nworkers = 1.5\n", "hashing.workers"),
    ("int-is-not-bool", "[hashing]\nenabled = 1\n", "hashing.enabled"),
    ("not-a-list", '[watch]\nignore = "*.tmp"\n', "watch.ignore"),
    ("list-of-ints", "[watch]\nignore = [1]\n", "watch.ignore"),
    ("ignore-with-slash", '[watch]\nignore = ["a/b"]\n', "watch.ignore"),
    ("section-not-table", "daemon = 3\n", "daemon"),
    ("roots-not-array", '[roots]\nname = "x"\n', "roots"),
    ("tags-not-list", ROOT + 'tags = "models"\n', "roots[0].tags"),
    ("zero-queue", "[watch]\nqueue_size = 0\n", "watch.queue_size"),
    ("negative-quiet", "[watch]\nquiet_ms = -1\n", "watch.quiet_ms"),
    ("delay-below-quiet", "[watch]\nquiet_ms = 500\nmax_delay_ms = 100\n", "watch.max_delay_ms"),
    ("zero-workers", "[hashing]\nworkers = 0\n", "hashing.workers"),
    ("negative-rate", "[hashing]\nmax_bytes_per_sec = -1\n", "hashing.max_bytes_per_sec"),
    ("zero-pool", "[database]\npool_size = 0\n", "database.pool_size"),
    ("bad-duration", '[reconcile]\ninterval = "1 hour"\n', "reconcile.interval"),
    ("zero-duration", "[reconcile]\ninterval = 0\n", "reconcile.interval"),
    ("negative-duration", '[reconcile]\ninterval = "-5s"\n', "reconcile.interval"),
    ("bool-duration", "[reconcile]\ninterval = true\n", "reconcile.interval"),
    ("bad-poll-interval", ROOT + 'poll_interval = "soon"\n', "roots[0].poll_interval"),
    ("bad-log-format", '[log]\nformat = "xml"\n', "log.format"),
    ("bad-log-level", '[log]\nlevel = "verbose"\n', "log.level"),
    ("root-without-name", '[[roots]]\npath = "/srv/a"\n', "roots[0].name"),
    ("root-without-path", '[[roots]]\nname = "a"\n', "roots[0].path"),
    ("root-relative-path", '[[roots]]\nname = "a"\npath = "srv/a"\n', "roots[0].path"),
    ("root-empty-path", '[[roots]]\nname = "a"\npath = ""\n', "roots[0].path"),
    ("root-empty-name", '[[roots]]\nname = ""\npath = "/srv/a"\n', "roots[0].name"),
    ("root-name-slash", '[[roots]]\nname = "a/b"\npath = "/srv/a"\n', "roots[0].name"),
    ("root-name-type", '[[roots]]\nname = 1\npath = "/srv/a"\n', "roots[0].name"),
    (
        "duplicate-names",
        ROOT + '[[roots]]\nname = "models"\npath = "/srv/other"\n',
        "roots[1].name",
    ),
    ("nested-inside", ROOT + '[[roots]]\nname = "b"\npath = "/srv/models/sub"\n', "roots[1].path"),
    ("nested-contains", ROOT + '[[roots]]\nname = "b"\npath = "/srv"\n', "roots[1].path"),
    ("nested-equal", ROOT + '[[roots]]\nname = "b"\npath = "/srv/models/"\n', "roots[1].path"),
    ("state-dir-relative", '[daemon]\nstate_dir = "state"\n', "daemon.state_dir"),
    (
        "state-dir-inside-root",
        ROOT + '[daemon]\nstate_dir = "/srv/models/.assetd"\n',
        "daemon.state_dir",
    ),
    (
        "sqlite-inside-root",
        ROOT + '[database]\nurl = "sqlite:////srv/models/catalog.db"\n',
        "database.url",
    ),
    ("sqlite-relative", '[database]\nurl = "sqlite:///catalog.db"\n', "database.url"),
    ("sqlite-memory", '[database]\nurl = "sqlite://"\n', "database.url"),
    ("mysql", '[database]\nurl = "mysql://u@h/db"\n', "database.url"),
    ("not-a-url", '[database]\nurl = "catalog.db"\n', "database.url"),
    ("syntax-error", "[daemon]\nhost = \n", "config.toml"),
    ("syntax-error-unclosed", '[daemon\nhost = "x"\n', "config.toml"),
]


@pytest.mark.parametrize(
    ("text", "key"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_config(tmp_path: Path, env: dict[str, str], text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, env)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("config: ")
    assert key in message
    assert info.value.exit_code == EXIT_CONFIG


def test_unknown_key_suggests_the_right_one(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, ROOT + "polling_interval = 5\n", env)
    assert str(info.value) == (
        "config: roots[0].polling_interval: unknown key (did you mean 'poll_interval'?)"
    )
    assert info.value.key == "roots[0].polling_interval"


def test_syntax_error_names_file_and_line(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, '[daemon]\nhost = "a"\nhost = \n', env)
    assert str(tmp_path / "config.toml") in str(info.value)
    assert "line 3" in str(info.value)


def test_unreadable_file(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "absent.toml"), env=env)


def test_state_dir_inside_root_names_the_root(tmp_path: Path, env: dict[str, str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    env = {"STATE_DIRECTORY": str(root / "state")}
    with pytest.raises(ConfigError) as info:
        load_config(None, extra_roots=[str(root)], env=env)
    assert str(info.value) == (
        f"config: daemon.state_dir: {root}/state (from $STATE_DIRECTORY) lies inside root 'root' "
        f"({root}); the daemon never writes inside a watched root"
    )


def test_symlinked_state_dir_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "state").mkdir(parents=True)
    (tmp_path / "link").symlink_to(root / "state")
    with pytest.raises(ConfigError, match=r"daemon\.state_dir"):
        load_config(None, extra_roots=[str(root)], env={"STATE_DIRECTORY": str(tmp_path / "link")})


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1h", 3600.0),
        ("30m", 1800.0),
        ("15s", 15.0),
        ("60s", 60.0),
        ("500ms", 0.5),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("60", 60.0),
        (" 2m ", 120.0),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text, "k") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "1x", "1 h", "-1s", "0", "0s", "1h-", "inf", True, -3])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ConfigError, match=r"^config: a\.key: "):
        parse_duration(text, "a.key")


# --- --root --------------------------------------------------------------------------------------


def test_extra_roots_are_named_after_their_directory(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "music").mkdir()
    monkeypatch.chdir(tmp_path)
    config = load_config(None, extra_roots=["photos", f"{tmp_path}/music/"], env=env)
    assert config.roots == (
        RootConfig(name="photos", path=f"{tmp_path}/photos"),
        RootConfig(name="music", path=f"{tmp_path}/music"),
    )


def test_extra_root_already_in_file_is_not_duplicated(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "data").mkdir()
    text = f'[[roots]]\nname = "mine"\npath = "{tmp_path}/data"\ntags = ["t"]\n'
    config = load_config(write(tmp_path, text), extra_roots=[str(tmp_path / "data")] * 2, env=env)
    assert config.roots == (RootConfig(name="mine", path=f"{tmp_path}/data", tags=("t",)),)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: str(p / "absent"), "not a directory"),
        (lambda p: str(p / "file"), "not a directory"),
        (lambda p: str(p / "a" / "data"), "duplicate root name 'data'"),
        (lambda p: str(p / "b" / "data" / "sub"), "lies inside root 'data'"),
        (lambda p: "/", "cannot name a root"),
    ],
)
def test_bad_extra_roots(tmp_path: Path, env: dict[str, str], make: object, message: str) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / "sub").mkdir(parents=True)
    text = f'[[roots]]\nname = "data"\npath = "{tmp_path}/b/data"\n'
    given = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), extra_roots=[given], env=env)
    assert str(info.value).startswith("config: --root: ")
    assert message in str(info.value)


# --- finding the file --------------------------------------------------------------------------


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A config file in each searched place; the system one under tmp_path."""
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "env": tmp_path / "from-env.toml",
        "home": tmp_path / "home" / ".config" / "assetd" / "config.toml",
        "etc": tmp_path / "etc" / "assetd" / "config.toml",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    monkeypatch.setattr(config_mod, "SYSTEM_CONFIG_PATH", str(paths["etc"]))
    return paths


def test_find_config_file_precedence(tmp_path: Path, places: dict[str, Path]) -> None:
    env = {"ASSETD_CONFIG": str(places["env"]), "HOME": str(tmp_path / "home")}
    assert find_config_file(str(places["explicit"]), env) == str(places["explicit"])
    assert find_config_file(None, env) == str(places["env"])
    del env["ASSETD_CONFIG"]
    assert find_config_file(None, env) == str(places["home"])
    places["home"].unlink()
    assert find_config_file(None, env) == str(places["etc"])
    places["etc"].unlink()
    assert find_config_file(None, env) is None


def test_find_config_file_uses_path_home_without_home(
    tmp_path: Path, places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    assert find_config_file(None, {}) == str(places["home"])


@pytest.mark.parametrize(("flag", "key"), [(True, "--config"), (False, "ASSETD_CONFIG")])
def test_find_config_file_explicit_must_exist(tmp_path: Path, flag: bool, key: str) -> None:
    missing = str(tmp_path / "nope.toml")
    env = {"HOME": str(tmp_path)} if flag else {"ASSETD_CONFIG": missing, "HOME": str(tmp_path)}
    with pytest.raises(ConfigError) as info:
        find_config_file(missing if flag else None, env)
    assert str(info.value) == f"config: {key}: no such file: {missing}"


# --- state directory ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state_dir", "env", "expected"),
    [
        ("/srv/state", {"STATE_DIRECTORY": "/var/lib/assetd"}, "/srv/state"),
        (
            "",
            {"STATE_DIRECTORY": "/var/lib/assetd:/var/lib/other", "HOME": "/h"},
            "/var/lib/assetd",
        ),
        ("", {"XDG_STATE_HOME": "/h/.state", "HOME": "/h"}, "/h/.state/assetd"),
        ("", {"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/assetd"),
        ("", {"HOME": "/h"}, "/h/.local/state/assetd"),
    ],
)
def test_state_dir_resolution(
    tmp_path: Path, state_dir: str, env: dict[str, str], expected: str
) -> None:
    config = load_text(tmp_path, f'[daemon]\nstate_dir = "{state_dir}"\n', env)
    assert config.state_dir == expected
    assert config.database_url == f"sqlite:///{expected}/catalog.db"


# --- host id -----------------------------------------------------------------------------------


def test_host_id_from_config(tmp_path: Path, env: dict[str, str]) -> None:
    config = load_text(tmp_path, '[daemon]\nhost = "farm-7"\n', env)
    assert host_id(config) == "farm-7"
    assert not os.path.exists(config.state_dir)


def test_host_id_generated_once_and_kept(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(None, env=env)
    monkeypatch.setattr(socket, "gethostname", lambda: "box")
    first = host_id(config)
    assert first.startswith("box-") and len(first) == len("box-") + 8
    path = Path(config.state_dir) / "host-id"
    assert path.read_text() == first + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(Path(config.state_dir).stat().st_mode) == 0o750
    assert os.listdir(config.state_dir) == ["host-id"]  # no temporary file left behind

    monkeypatch.setattr(socket, "gethostname", lambda: "renamed")
    assert host_id(config) == first
    assert host_id(load_config(None, env=env)) == first


def test_read_host_id_never_writes(env: dict[str, str]) -> None:
    config = load_config(None, env=env)
    assert read_host_id(config) == ""
    assert not os.path.exists(config.state_dir)
    generated = host_id(config)
    assert read_host_id(config) == generated


def test_host_id_that_cannot_be_kept_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    config = load_config(None, env={"STATE_DIRECTORY": str(tmp_path / "not-a-dir" / "state")})
    with pytest.raises(ConfigError, match=r"^config: daemon\.host: cannot keep a host id in "):
        host_id(config)


def test_empty_host_id_file_is_not_silently_replaced(env: dict[str, str]) -> None:
    config = load_config(None, env=env)
    os.makedirs(config.state_dir)
    Path(config.state_dir, "host-id").write_text("")
    with pytest.raises(ConfigError, match="is empty or unreadable"):
        host_id(config)
    assert Path(config.state_dir, "host-id").read_text() == ""
