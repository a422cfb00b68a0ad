"""The API's parts on their own: [api] config checks (exit 78), the event ring's resume and
reset, a client that stops reading (a real uvicorn on a real socket), ComfyUI's field names,
and that the CLI never imports the web stack."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from api_client import SseReader
from assetd.api import events as events_module
from assetd.api import sse as sse_module
from assetd.api.events import EventRing, EventSource
from assetd.api.models import (
    AssetOut,
    AssetsList,
    SeedCompleted,
    SeedProgress,
    SeedStatus,
    TagsAdded,
    TagsList,
    TagsRemoved,
    TagUsage,
)
from assetd.api.server import _GuestServer, bind
from assetd.api.sse import EventStreamResponse
from assetd.config import load_config
from assetd.config_parse import check_api_listen, parse_listen
from assetd.errors import ConfigError
from helpers import wait_until

# --- [api] config ---------------------------------------------------------------------------


def _run(tmp_path: Path, api: str) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "s"
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n{api}\n[[roots]]\nname = "r"\npath = "{root}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSETD_", "NOTIFY_"))}
    return subprocess.run(
        [sys.executable, "-m", "assetd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("api", "says"),
    [
        ('[api]\nlisten = ["0.0.0.0:8188"]', "api.token_file: required"),
        ('[api]\nlisten = ["192.168.1.10:8188"]', "api.token_file: required"),
        ('[api]\nlisten = ["unix:' + "x" * 120 + '.sock"]', "more than the 107 AF_UNIX allows"),
        ('[api]\nlisten = ["localhost"]', "expected 'unix:PATH' or 'HOST:PORT'"),
        ('[api]\nlisten = ["127.0.0.1:70000"]', "expected 'unix:PATH' or 'HOST:PORT'"),
        ('[api]\nlisten = "unix:api.sock"', "api.listen: expected an array"),
        ('[api]\ntoken_file = "relative"', "api.token_file: must be an absolute path"),
        ("[api]\nlistn = []", "api.listn: unknown key (did you mean 'listen'?)"),
    ],
)
def test_api_config_faults_name_the_key(tmp_path: Path, api: str, says: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "s"}"\n{api}\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(config), env={})
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("api", "says"),
    [
        ('[api]\nlisten = ["0.0.0.0:8188"]', "api.token_file: required"),
        ('[api]\ntoken_file = "/nonexistent/token"', "api.token_file: cannot read"),
    ],
)
def test_run_exits_78_with_one_line(tmp_path: Path, api: str, says: str) -> None:
    out = _run(tmp_path, api)
    assert out.returncode == 78, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], out.stderr


def test_empty_token_file_exits_78(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    out = _run(tmp_path, f'[api]\ntoken_file = "{tmp_path / "token"}"')
    assert out.returncode == 78 and "is empty" in out.stderr


def test_listen_addresses_parse(tmp_path: Path) -> None:
    assert parse_listen("unix:api.sock", "/var/lib/assetd").path == "/var/lib/assetd/api.sock"
    assert parse_listen("unix:/run/a.sock", "/x").path == "/run/a.sock"
    v6 = parse_listen("[::1]:8188", "/x")
    assert (v6.host, v6.port, v6.is_loopback) == ("::1", 8188, True)
    assert parse_listen("localhost:1", "/x").is_loopback
    assert not parse_listen("example.org:80", "/x").is_loopback
    config = load_config(None, env={"XDG_STATE_HOME": str(tmp_path)})
    assert config.api.listen == ("unix:api.sock",) and config.api.token_file == ""
    with pytest.raises(ConfigError, match=r"api\.token_file"):
        check_api_listen(["[2001:db8::1]:80"], "", "/x")


def test_a_socket_in_use_is_not_replaced_and_a_stale_one_is(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen(1)
    try:
        with pytest.raises(OSError, match="another process serves"):
            bind(parse_listen(f"unix:{path}", "/"))
    finally:
        live.close()  # now stale: the file stays, nobody listens
    sock = bind(parse_listen(f"unix:{path}", "/"))
    try:
        assert os.stat(path).st_mode & 0o777 == 0o660
    finally:
        sock.close()
    (tmp_path / "plain").write_text("x")
    with pytest.raises(OSError, match="not a socket"):
        bind(parse_listen(f"unix:{tmp_path / 'plain'}", "/"))


def test_the_cli_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, assetd.cli, assetd.service, assetd.commands.status, assetd.api.runtime\n"
        "bad = [m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client', 'pydantic')"
        " if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# --- the ring ---------------------------------------------------------------------------------


def test_ring_resumes_while_it_reaches_back_then_resets() -> None:
    ring = EventRing(size=3, run="r")
    for n in range(5):
        ring.publish("batch.applied", {"n": n})  # ids r-1 .. r-5; r-3 .. r-5 kept
    assert ring.since(None) == []
    assert [e.id for e in ring.since("r-3") or []] == ["r-4", "r-5"]
    assert [e.id for e in ring.since("r-2") or []] == ["r-3", "r-4", "r-5"]  # r-3 is next
    assert ring.since("r-5") == []
    assert ring.since("r-1") is None  # r-2 fell out of the ring: re-list
    assert ring.since("r-6") is None  # from the future
    assert ring.since("other-5") is None  # an earlier daemon run
    assert ring.since("nonsense") is None


def test_ring_holds_a_bounded_number_of_paths() -> None:
    """A ``hash.recorded`` event carries every path and digest of its group (up to 256): kept
    by count alone, 10,000 of them held 2.5 million paths (the daemon's memory grew with the
    tree: about 27 MiB for the start-up hashing of 100,000 files). The ring drops its oldest
    events past ``paths`` paths; resuming from before them is a reset, as for any lost event."""
    ring = EventRing(size=100, run="r", paths=1_000)
    for n in range(10):
        paths = [f"/m/{n}/{i}" for i in range(256)]
        ring.publish("hash.recorded", {"count": 256, "paths": paths, "hashes": paths})
    ring.publish("batch.applied", {"new": 0})
    kept = [e.id for e in ring.events]
    assert kept == ["r-8", "r-9", "r-10", "r-11"]  # 3 x 256 paths, then one without
    assert ring.held_paths == 768
    assert ring.since("r-6") is None  # r-7 was dropped: re-list
    assert [e.id for e in ring.since("r-7") or []] == kept
    big = EventRing(size=100, run="b", paths=10)
    big.publish("hash.recorded", {"paths": [f"/m/{i}" for i in range(256)]})
    assert [e.id for e in big.events] == ["b-1"]  # the newest is always kept


def test_source_is_bounded_and_a_loss_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "SOURCE_QUEUE", 3)
    source = EventSource(lambda: [("models", "/m")])
    source.batch_applied(
        {"missing": 2, "new": 0},
        {"cache_state.missing": ["/m/a", "/elsewhere/b"], "cache_state.created": []},
    )
    source.reconcile_finished({"new": 1}, ["models"])  # the 4th event: lost
    raw, lost = source.drain()
    assert lost and [e.name for e in raw] == [
        "cache_state.missing",
        "cache_state.missing",
        "batch.applied",
    ]
    assert raw[0].data["root"] == "models" and raw[0].paths == ("/m/a",)
    assert raw[1].data["root"] is None
    assert source.drain() == ([], False)


def test_hash_recorded_groups_by_root_and_outcome() -> None:
    source = EventSource(lambda: [("models", "/m"), ("inputs", "/i")])
    source.hash_recorded(
        [
            ("/m/a", "blake3:aa", "hashed"),
            ("/i/b", "blake3:bb", "hashed"),
            ("/m/c", "blake3:cc", "merged"),
            ("/m/d", "blake3:dd", "hashed"),
        ]
    )
    raw, lost = source.drain()
    assert not lost
    got = [(e.name, e.data["root"], e.data["outcome"], e.paths, e.data["hashes"]) for e in raw]
    assert got == [
        ("hash.recorded", "models", "hashed", ("/m/a", "/m/d"), ["blake3:aa", "blake3:dd"]),
        ("hash.recorded", "inputs", "hashed", ("/i/b",), ["blake3:bb"]),
        ("hash.recorded", "models", "merged", ("/m/c",), ["blake3:cc"]),
    ]
    assert [e.data["count"] for e in raw] == [2, 1, 1]


# --- a client that stops reading --------------------------------------------------------------


@pytest.fixture
def served_ring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Any]]:
    """A real uvicorn serving only the event stream, on a unix socket, on its own thread."""
    monkeypatch.setattr(sse_module, "SEND_TIMEOUT", 0.5)
    monkeypatch.setattr(events_module, "CLIENT_QUEUE", 20)
    ring = EventRing(run="t")

    async def stream(request: Request) -> EventStreamResponse:
        return EventStreamResponse(ring, request.headers.get("last-event-id"))

    import uvicorn

    app = Starlette(routes=[Route("/api/events", stream)])
    server = _GuestServer(uvicorn.Config(app, log_config=None, lifespan="off"))
    path = tmp_path / "s.sock"
    sock = bind(parse_listen(f"unix:{path}", "/"))
    loops: list[asyncio.AbstractEventLoop] = []

    def run() -> None:
        async def main() -> None:
            loops.append(asyncio.get_running_loop())
            await server.serve(sockets=[sock])

        asyncio.run(main())

    thread = threading.Thread(target=run, name="test-uvicorn")
    thread.start()
    wait_until(lambda: server.started, 10, what="uvicorn")
    try:
        yield path, (ring, loops[0])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_client_that_stops_reading_is_dropped(served_ring: tuple[Path, Any]) -> None:
    path, (ring, loop) = served_ring
    stuck = SseReader(str(path), None, read=False)  # sends its request, never reads
    reader = SseReader(str(path), None)
    big = "x" * 64 * 1024
    try:
        wait_until(lambda: len(ring.subscribers) == 2, 10, what="two subscribers")
        for n in range(400):  # 25 MiB: far more than the socket buffers hold
            asyncio.run_coroutine_threadsafe(_publish(ring, n, big), loop).result(5)
            if len(ring.subscribers) < 2:
                break
        wait_until(lambda: len(ring.subscribers) == 1, 15, what="the stuck client dropped")
        assert ring.dropped_clients >= 1
        count = ring.published
        wait_until(lambda: len(reader.events) == count, 15, what="the reader got every event")
    finally:
        stuck.close()
        reader.close()


async def _publish(ring: EventRing, n: int, payload: str) -> None:
    ring.publish("batch.applied", {"n": n, "pad": payload})
    await asyncio.sleep(0)


# --- ComfyUI's field names --------------------------------------------------------------------

# app/assets/api/schemas_out.py and routes.py of ComfyUI (read, not copied): the names a client
# of its asset API reads. assetd's models must carry each of them.
COMFY = {
    AssetOut: {
        "id",
        "name",
        "hash",
        "size",
        "mime_type",
        "tags",
        "user_metadata",
        "created_at",
        "updated_at",
        "last_access_time",
    },
    AssetsList: {"assets", "total", "has_more", "next_cursor"},
    TagUsage: {"name", "count"},
    TagsList: {"tags", "total", "has_more"},
    TagsAdded: {"added", "already_present", "total_tags"},
    TagsRemoved: {"removed", "not_present", "total_tags"},
    SeedProgress: {"scanned", "total", "created", "skipped"},
    SeedStatus: {"state", "progress", "errors"},
    SeedCompleted: {"status", "progress", "errors"},
}


@pytest.mark.parametrize("model", list(COMFY), ids=lambda m: m.__name__)
def test_response_models_carry_comfyuis_field_names(model: Any) -> None:
    assert COMFY[model] <= set(model.model_fields), COMFY[model] - set(model.model_fields)
    schema = json.dumps(model.model_json_schema())
    assert all(f'"{name}"' in schema for name in COMFY[model])


def test_the_default_socket_under_a_long_state_dir_is_not_a_config_error(tmp_path: Path) -> None:
    """Only an explicit api.listen is refused for length; the default one fails to bind, which
    the daemon logs as api.unavailable while the catalog's work goes on."""
    long_dir = tmp_path / ("d" * 100)
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'[daemon]\nstate_dir = "{long_dir}"\n')
    config = load_config(str(config_file), env={})
    assert config.api.listen == ("unix:api.sock",)
    config_file.write_text(
        f'[daemon]\nstate_dir = "{long_dir}"\n[api]\nlisten = ["unix:api.sock"]\n'
    )
    with pytest.raises(ConfigError, match="more than the 107 AF_UNIX allows"):
        load_config(str(config_file), env={})
    long_dir.mkdir()
    address = parse_listen("unix:api.sock", str(long_dir), strict_paths=False)
    with pytest.raises(OSError):
        bind(address)


def test_an_unbindable_address_is_retried_every_30_s_unless_a_test_says_otherwise() -> None:
    from assetd.api import server
    from assetd.faults import API_RETRY, api_retry_every

    assert server.RETRY_EVERY == 30.0
    assert api_retry_every(server.RETRY_EVERY, {}) == 30.0  # production: no variable
    assert api_retry_every(30.0, {API_RETRY: "0.2"}) == 0.2
    for bad in ("", "soon", "0", "-1"):
        assert api_retry_every(30.0, {API_RETRY: bad}) == 30.0
