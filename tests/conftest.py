"""Shared fixtures: a catalog on a real SQLite file and on the real PostgreSQL server (§8)."""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from assetd.catalog.engine import SessionFactory, make_engine, session_factory
from assetd.catalog.schema import Upgrade, ensure_schema
from assetd.live.backend import fanotify_unavailable
from assetd.log import reset_logging
from cli_world import Cli, isolate
from daemon_harness import Daemon

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(
    "ci" if os.environ.get("CI") or os.environ.get("ASSETD_REQUIRE_PG") else "dev"
)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts (observers, their inotify readers and emitters, the pipeline,
    the hasher) is gone when it ends."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture(autouse=True)
def reset_logging_after() -> Iterator[None]:
    """Leave logging as each test found it: structlog defaults, assetd's root handler removed."""
    yield
    reset_logging()


PG_ADMIN_URL = os.environ.get("ASSETD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("ASSETD_REQUIRE_PG") == "1"
_counter = itertools.count()


def pg_unavailable(reason: str) -> None:
    """Skip a PostgreSQL test, or fail it where PostgreSQL is required (CI)."""
    if REQUIRE_PG:
        pytest.fail(f"PostgreSQL required (ASSETD_REQUIRE_PG=1) but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine | None]:
    engine = create_engine(
        PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as err:
        engine.dispose()
        yield None
        _ = err
        return
    yield engine
    engine.dispose()


def _pg_url(name: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(scope="session")
def pg_template(pg_admin: Engine | None) -> Iterator[str | None]:
    """A database migrated once; each test gets a copy (CREATE DATABASE ... TEMPLATE)."""
    if pg_admin is None:
        yield None
        return
    name = f"assetd_tpl_{os.getpid()}"
    _drop_database(pg_admin, name)
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_url(name))
    ensure_schema(engine, Upgrade.CREATE)
    engine.dispose()
    yield name
    _drop_database(pg_admin, name)


@pytest.fixture
def pg_url(pg_admin: Engine | None, pg_template: str | None) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database for this test."""
    if pg_admin is None or pg_template is None:
        pg_unavailable(f"no PostgreSQL server at {make_url(PG_ADMIN_URL).render_as_string()}")
    name = f"assetd_t_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    assert pg_admin is not None
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _pg_url(name)
    _drop_database(pg_admin, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    ensure_schema(engine, Upgrade.CREATE)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """The URL of a fresh, migrated SQLite file for this test."""
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    path = state / "catalog.db"
    shutil.copyfile(sqlite_template, path)
    os.chmod(path, 0o640)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each catalog test runs on both engines."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> SessionFactory:
    return session_factory(engine)


# --- shared fixtures of the CLI and daemon tests (a test module may override ``lib``) ----------


@pytest.fixture
def xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An isolated environment for in-process CLI runs: its own XDG state and HOME."""
    return isolate(monkeypatch, tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], xdg: Path) -> Cli:
    return Cli(capsys)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """An empty root directory; modules that need files in it define their own."""
    d = tmp_path / "lib"
    d.mkdir()
    return d


@pytest.fixture
def backend() -> str:
    """``[watch] backend`` of the ``daemon`` fixture; a test parametrises it to run on both
    (``@pytest.mark.parametrize("backend", BACKENDS)``)."""
    return "inotify"


@pytest.fixture
def daemon(tmp_path: Path, lib: Path, backend: str) -> Iterator[Daemon]:
    """The real `assetd run` on ``lib`` (started by the test), closed afterwards."""
    if backend == "fanotify":
        why = fanotify_unavailable(str(lib))
        if why is not None:
            pytest.skip(f"fanotify unavailable here: {why}")
    d = Daemon(tmp_path, {"lib": lib}, backend=backend)
    yield d
    d.close()
