"""The API's server in this process, on a real catalog, with the daemon's parts replaced by a
typed stand-in (what the end-to-end tests cannot provoke quickly): /healthz's 503s, a database
that does not answer (503 in the error shape), and an address that becomes free being bound by
the retry."""

from __future__ import annotations

import queue
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_client import free_port
from assetd.api import server as server_module
from assetd.api.runtime import ApiRuntime
from assetd.catalog.engine import make_engine, session_factory
from assetd.catalog.roots import RootSpec
from assetd.config import load_config
from helpers import wait_until


@dataclass
class _Catalog:
    url: str
    host: str = "host-a"
    sessions: Any = None

    def host_root_ids(self) -> list[int]:
        return []


@dataclass
class _Pipeline:
    db_ok: bool = True
    canary_seen: float = 0.0
    failed_batches: int = 0


@dataclass
class _Canary:
    flowing: bool = True

    def alive(self, seen_at: float) -> bool:
        return self.flowing


@dataclass
class _Scheduler:
    running: bool = False


@dataclass
class _Watchers:
    names: list[str] = field(default_factory=list)

    def get(self, name: str) -> None:
        return None


@dataclass
class StandIn:
    """What ApiRuntime reads of the daemon (the DaemonView protocol), nothing running."""

    config: Any
    catalog: Any
    roots: list[RootSpec] = field(default_factory=list)
    unavailable: set[int] = field(default_factory=set)
    hasher: Any = None
    pipeline: Any = field(default_factory=_Pipeline)
    scheduler: Any = field(default_factory=_Scheduler)
    canary: Any = field(default_factory=_Canary)
    watchers: Any = field(default_factory=_Watchers)
    changes: queue.Queue[Any] = field(default_factory=queue.Queue)


@pytest.fixture
def served(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[StandIn, ApiRuntime, int, socket.socket]]:
    monkeypatch.setattr(server_module, "RETRY_EVERY", 0.2)
    port = free_port()
    busy = socket.socket()
    busy.bind(("127.0.0.1", port))
    busy.listen(1)
    config_file = tmp_path / "c.toml"
    config_file.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[api]\nlisten = ["unix:api.sock", "127.0.0.1:{port}"]\n'
    )
    (tmp_path / "state").mkdir(exist_ok=True)
    config = load_config(str(config_file), env={})
    engine = make_engine(sqlite_url)
    daemon = StandIn(config, _Catalog(sqlite_url, sessions=session_factory(engine)))
    runtime = ApiRuntime(config, daemon)
    runtime.start()
    try:
        yield daemon, runtime, port, busy
    finally:
        runtime.stop()
        busy.close()
        engine.dispose()


def _unix(runtime: ApiRuntime) -> httpx.Client:
    path = runtime.addresses[0].path
    wait_until(lambda: Path(path).exists(), 30, what="the socket")
    return httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://a", timeout=30)


def test_healthz_says_why_it_is_unhealthy(
    served: tuple[StandIn, ApiRuntime, int, socket.socket],
) -> None:
    daemon, runtime, _, _ = served
    with _unix(runtime) as c:
        assert c.get("/healthz").json()["status"] == "ok"
        daemon.canary.flowing = False
        r = c.get("/healthz")
        assert r.status_code == 503 and "canary" in r.json()["reason"]
        daemon.canary.flowing = True
        daemon.pipeline.db_ok = False
        r = c.get("/healthz")
        assert r.status_code == 503 and "database" in r.json()["reason"]


def test_a_database_that_does_not_answer_is_503(
    served: tuple[StandIn, ApiRuntime, int, socket.socket], sqlite_url: str
) -> None:
    _, runtime, _, _ = served
    with _unix(runtime) as c:
        assert c.get("/api/assets").status_code == 200
        db = Path(sqlite_url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        db.mkdir()  # a directory where the catalog was: every new connection fails
        runtime._server.engine.dispose()  # drop the pooled connections to the unlinked file
        r = c.get("/api/assets", params={"name_contains": "fresh"})  # a new filter: counted
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "DATABASE_UNAVAILABLE"


def test_a_busy_address_is_bound_once_it_is_free(
    served: tuple[StandIn, ApiRuntime, int, socket.socket],
) -> None:
    _, runtime, port, busy = served
    address = f"127.0.0.1:{port}"
    wait_until(lambda: runtime.listening.get(address), 30, what="api.unavailable")
    assert "in use" in str(runtime.listening[address])
    busy.close()
    wait_until(lambda: runtime.listening.get(address, "x") is None, 30, what="bound on retry")
    with httpx.Client(base_url=f"http://{address}", timeout=30) as c:
        assert c.get("/healthz").status_code == 200
