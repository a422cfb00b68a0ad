"""The HTTP API of the real `assetd run`, over its unix socket and a loopback TCP port (httpx).

One daemon serves the whole module (start-up costs a second or two on a loaded machine): roots
`models` and `inputs` with a few files, and `bulk` with enough files that a seed takes a moment.
It listens on a unix socket (where a stale socket was left), a free TCP port, and a TCP port the
test holds busy (the `api.unavailable` case).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api_client import SseReader, free_port, tcp_client, unix_client
from daemon_harness import Daemon
from helpers import wait_until

TOKEN = "s3cret-token"


class World:
    def __init__(self, daemon: Daemon, base: Path, port: int, busy: int) -> None:
        self.daemon, self.base, self.port, self.busy = daemon, base, port, busy
        self.sock = daemon.state / "api.sock"

    def unix(self, token: str | None = TOKEN) -> httpx.Client:
        return unix_client(self.sock, token)

    def tcp(self, token: str | None = TOKEN) -> httpx.Client:
        return tcp_client(self.port, token)

    def info_id(self, path: Path) -> str:
        rows = self.daemon.query(
            "SELECT i.id FROM asset_infos i JOIN asset_cache_states c ON c.asset_id = i.asset_id "
            "WHERE c.file_path = ?",
            str(path),
        )
        assert rows, path
        return str(rows[0][0])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("api")
    roots = {n: base / n for n in ("models", "inputs", "bulk")}
    for path in roots.values():
        path.mkdir()
    (roots["models"] / "sd").mkdir()
    (roots["models"] / "sd" / "alpha.safetensors").write_bytes(b"alpha" * 100)
    (roots["models"] / "sd" / "beta.safetensors").write_bytes(b"beta" * 10)
    (roots["models"] / "gamma.ckpt").write_bytes(b"g")
    (roots["inputs"] / "photo.png").write_bytes(b"png")
    for i in range(3000):
        (roots["bulk"] / f"f{i:05d}").write_bytes(b"%d" % i)
    (base / "token").write_text(TOKEN + "\n")
    port, busy_sock = free_port(), socket.socket()
    busy_sock.bind(("127.0.0.1", 0))
    busy_sock.listen(1)
    busy = busy_sock.getsockname()[1]
    daemon = Daemon(
        base,
        roots,
        f'[api]\nlisten = ["unix:api.sock", "127.0.0.1:{port}", "127.0.0.1:{busy}"]\n'
        f'token_file = "{base / "token"}"\n',
        min_quiet_ms=20,  # a fixed 20 ms window: the latency test measures it
    )
    daemon.state.mkdir()
    stale = socket.socket(socket.AF_UNIX)  # a socket file left by a crash: nobody listens
    stale.bind(str(daemon.state / "api.sock"))
    stale.close()
    daemon.start()
    w = World(daemon, base, port, busy)
    try:
        wait_until(lambda: w.sock.exists() and _answers(w), 30, what="the API")
        wait_until(lambda: daemon.is_live(roots["bulk"] / "f02999"), 30, what="bulk catalogued")
        yield w
    finally:
        code = daemon.stop()
        daemon.close()
        busy_sock.close()
        assert code == 0, daemon.log_text()[-3000:]


def _answers(w: World) -> bool:
    try:
        with w.unix() as c:
            return c.get("/healthz").status_code in (200, 503)
    except httpx.HTTPError:
        return False


# --- list, filters, pages ------------------------------------------------------------------


@pytest.mark.parametrize("via", ["unix", "tcp"])
def test_list_filters_and_shape(world: World, via: str) -> None:
    client = world.unix() if via == "unix" else world.tcp()
    with client:
        r = client.get("/api/assets", params={"in_root": "models", "sort": "name", "order": "asc"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [a["name"] for a in body["assets"]] == [
            "alpha.safetensors",
            "beta.safetensors",
            "gamma.ckpt",
        ]
        assert body["total"] == 3 and body["has_more"] is False
        alpha = body["assets"][0]
        assert alpha["size"] == 500 and alpha["tags"] == ["models"]
        assert alpha["last_access_time"] is None and isinstance(alpha["id"], str)
        assert alpha["paths"] == [
            {
                "root": "models",
                "path": str(world.base / "models/sd/alpha.safetensors"),
                "is_missing": False,
            }
        ]
        prefix = str(world.base / "models" / "sd")
        r = client.get("/api/assets", params={"path_prefix": prefix, "name_contains": "ALP"})
        assert [a["name"] for a in r.json()["assets"]] == ["alpha.safetensors"]
        r = client.get("/api/assets", params={"include_tags": "inputs"})
        assert [a["name"] for a in r.json()["assets"]] == ["photo.png"]
        r = client.get(
            "/api/assets",
            params=[("exclude_tags", "bulk"), ("exclude_tags", "inputs"), ("sort", "size")],
        )
        assert [a["name"] for a in r.json()["assets"]] == [
            "alpha.safetensors",
            "beta.safetensors",
            "gamma.ckpt",
        ]


@pytest.mark.parametrize("sort", ["name", "created_at"])
def test_cursor_pages_match_offset_pages(world: World, sort: str) -> None:
    with world.unix() as c:
        params: dict[str, Any] = {"in_root": "bulk", "sort": sort, "order": "desc", "limit": 500}
        by_offset, offset = [], 0
        while True:
            body = c.get("/api/assets", params={**params, "offset": offset}).json()
            by_offset += [a["id"] for a in body["assets"]]
            offset += 500
            if not body["has_more"]:
                break
        by_cursor, cursor = [], None
        while True:
            body = c.get("/api/assets", params={**params, **({"after": cursor} if cursor else {})})
            body = body.json()
            by_cursor += [a["id"] for a in body["assets"]]
            assert body["total"] == 3000
            cursor = body.get("next_cursor")
            if not body["has_more"]:
                assert cursor is None
                break
        assert by_cursor == by_offset and len(set(by_cursor)) == 3000


# --- errors -----------------------------------------------------------------------------------


def test_token_missing_wrong_right(world: World) -> None:
    for client in (world.unix(token=None), world.tcp(token=None)):
        with client:
            r = client.get("/api/assets")
            assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
            assert client.get("/healthz").status_code == 200  # no token needed
            r = client.get("/api/tags", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401 and "wrong" in r.json()["error"]["message"]
            r = client.get("/api/tags", headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200


@pytest.mark.parametrize(
    ("method", "url", "params", "body", "field", "code"),
    [
        ("GET", "/api/assets", {"limit": 0}, None, "limit", "INVALID_QUERY"),
        ("GET", "/api/assets", {"limit": 501}, None, "limit", "INVALID_QUERY"),
        ("GET", "/api/assets", {"sort": "colour"}, None, "sort", "INVALID_QUERY"),
        ("GET", "/api/assets", {"after": "!!nope"}, None, "after", "INVALID_CURSOR"),
        ("GET", "/api/assets", {"path_prefix": "rel"}, None, "path_prefix", "INVALID_QUERY"),
        ("GET", "/api/tags", {"order": "sideways"}, None, "order", "INVALID_QUERY"),
        ("POST", "/api/assets/1/tags", None, {"tags": []}, "tags", "INVALID_BODY"),
        ("PUT", "/api/assets/1", None, {"name": ""}, "name", "INVALID_BODY"),
        ("POST", "/api/assets/seed", None, {"roots": ["nope"]}, "roots", "INVALID_BODY"),
        ("HEAD", "/api/assets/hash/md5:00", None, None, None, None),
    ],
)
def test_validation_errors_name_the_field(
    world: World,
    method: str,
    url: str,
    params: dict[str, object] | None,
    body: object,
    field: str | None,
    code: str | None,
) -> None:
    with world.unix() as c:
        r = c.request(method, url, params=params, json=body)  # type: ignore[arg-type]
    assert r.status_code == 400, r.text
    if method == "HEAD":
        return
    error = r.json()["error"]
    assert error["code"] == code and error["details"]["field"] == field
    assert error["message"].startswith(f"{field}:")


def test_get_put_head_and_404(world: World) -> None:
    path = world.base / "models" / "gamma.ckpt"
    info = world.info_id(path)
    with world.tcp() as c:
        r = c.get(f"/api/assets/{info}")
        assert r.status_code == 200 and r.json()["name"] == "gamma.ckpt"
        assert c.get("/api/assets/999999").json()["error"]["code"] == "ASSET_NOT_FOUND"
        assert c.get("/api/assets/abc").status_code == 404
        r = c.put(f"/api/assets/{info}", json={"name": "g.ckpt", "user_metadata": {"k": 1}})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "g.ckpt" and r.json()["user_metadata"] == {"k": 1}
        assert r.json()["updated_at"] > r.json()["created_at"]
        digest = wait_until(
            lambda: c.get(f"/api/assets/{info}").json()["hash"], 20, what="gamma hashed"
        )
        assert c.head(f"/api/assets/hash/{digest}").status_code == 200
        assert c.head("/api/assets/hash/blake3:" + "0" * 64).status_code == 404
        assert c.put("/api/assets/999999", json={"name": "x"}).status_code == 404


def test_tags_manual_added_automatic_protected(world: World) -> None:
    path = world.base / "inputs" / "photo.png"
    info = world.info_id(path)
    with world.unix() as c:
        r = c.post(f"/api/assets/{info}/tags", json={"tags": ["Favourite", "inputs"]})
        assert r.json() == {
            "added": ["favourite"],
            "already_present": ["inputs"],
            "total_tags": ["favourite", "inputs"],
        }
        origin = world.daemon.query(
            "SELECT origin FROM asset_info_tags WHERE asset_info_id = ? AND tag_name = ?",
            int(info),
            "favourite",
        )
        assert origin == [("manual",)]
        tags = c.get("/api/tags", params={"prefix": "fav"}).json()
        assert tags == {"tags": [{"name": "favourite", "count": 1}], "total": 1, "has_more": False}
        r = c.request(
            "DELETE", f"/api/assets/{info}/tags", json={"tags": ["favourite", "inputs", "zz"]}
        )
        assert r.json() == {
            "removed": ["favourite"],
            "not_present": ["zz"],
            "protected": ["inputs"],
            "total_tags": ["inputs"],
        }
        assert c.post("/api/assets/999999/tags", json={"tags": ["x"]}).status_code == 404


# --- seed and prune ---------------------------------------------------------------------------


def test_seed_wait_status_cancel_and_the_409s(world: World) -> None:
    with world.unix() as c:
        r = c.post("/api/assets/seed?wait=true", json={"roots": ["models"]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "completed" and set(body["progress"]) == {
            "scanned",
            "total",
            "created",
            "skipped",
        }
        assert body["progress"]["scanned"] >= 3
        assert c.get("/api/assets/seed/status").json()["state"] == "idle"
        assert c.post("/api/assets/seed/cancel").json() == {"status": "idle"}
        assert c.post("/api/assets/prune").json() == {"status": "completed", "marked": 0}
        r = c.post("/api/assets/seed", json={"roots": ["bulk"]})
        assert r.status_code == 202 and r.json() == {"status": "started"}
        again = c.post("/api/assets/seed")
        prune = c.post("/api/assets/prune")
        status = c.get("/api/assets/seed/status").json()
        cancel = c.post("/api/assets/seed/cancel").json()
        # 3,000 files take far longer to walk than three local requests
        assert again.status_code == 409 and again.json() == {"status": "already_running"}
        assert prune.status_code == 409 and prune.json() == {"status": "scan_running", "marked": 0}
        assert status["state"] in ("running", "cancelling") and "errors" in status
        assert cancel in ({"status": "cancelling"}, {"status": "idle"})
        wait_until(
            lambda: c.get("/api/assets/seed/status").json()["state"] == "idle", 30, what="idle"
        )


# --- the change feed --------------------------------------------------------------------------


def test_delete_arrives_on_events_after_the_row_is_missing(world: World) -> None:
    victim = world.base / "models" / "sd" / "beta.safetensors"
    info = int(world.info_id(victim))
    reader = SseReader(str(world.sock), TOKEN)
    try:
        wait_until(lambda: reader.status, 10, what="the stream's response")
        assert reader.status == 200
        missing_when_seen: list[bool] = []

        def arrived() -> bool:
            for e in reader.named("cache_state.missing"):
                if str(victim) in e.data["paths"]:
                    missing_when_seen.append(world.daemon.is_missing(victim))
                    return True
            return False

        victim.unlink()
        wait_until(arrived, 20, what="cache_state.missing on /api/events")
        event = next(e for e in reader.named("cache_state.missing"))
        assert missing_when_seen == [True]  # committed before it was sent
        assert event.data["root"] == "models" and info in event.data["asset_info_ids"]
        assert event.id is not None
        wait_until(lambda: reader.named("batch.applied"), 10, what="batch.applied")
        first_id = event.id
    finally:
        reader.close()
    # resume: everything after first_id, starting with the batch.applied that followed it
    resumed = SseReader(str(world.sock), TOKEN, last_event_id=first_id)
    try:
        wait_until(lambda: resumed.events, 10, what="replayed events")
        assert resumed.events[0].name == "batch.applied"
        run, _, n = first_id.rpartition("-")
        assert resumed.events[0].id == f"{run}-{int(n) + 1}"
    finally:
        resumed.close()
    for stale_id in ("0-1", f"{run}-99999999", "garbage"):
        reset = SseReader(("127.0.0.1", world.port), TOKEN, last_event_id=stale_id)
        try:
            wait_until(lambda r=reset: r.events, 10, what="reset")  # type: ignore[misc]
            assert reset.events[0].name == "reset"
        finally:
            reset.close()


# --- metrics, health, schema, status ----------------------------------------------------------


def test_metrics_parse_with_prometheus_client(world: World) -> None:
    with world.unix() as c:
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert all(name.startswith("assetd_") for name in families)
    for name in (
        "assetd_events_received",
        "assetd_batches",
        "assetd_batch_duration_seconds",
        "assetd_batch_latency_seconds",
        "assetd_queue_depth",
        "assetd_reconciles",
        "assetd_reconcile_duration_seconds",
        "assetd_overflows",
        "assetd_hashing_backlog_files",
        "assetd_hashed_bytes",
        "assetd_cache_states",
        "assetd_root_available",
        "assetd_database_errors",
    ):
        assert name in families, name
    states = {
        (s.labels["root"], s.labels["state"]): s.value
        for s in families["assetd_cache_states"].samples
    }
    assert states[("bulk", "live")] == 3000
    available = {s.labels["root"]: s.value for s in families["assetd_root_available"].samples}
    assert available == {"models": 1, "inputs": 1, "bulk": 1}


def test_healthz_openapi_and_status(world: World) -> None:
    with world.tcp() as c:
        assert c.get("/healthz").json()["status"] == "ok"
        schema = c.get("/openapi.json").json()
    for path in ("/api/assets", "/api/tags", "/api/assets/seed", "/api/assets/prune"):
        assert path in schema["paths"], path
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
    out = subprocess.run(
        [sys.executable, "-m", "assetd", "status", "--config", str(world.daemon.config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    api_line = next(line for line in out.stdout.splitlines() if line.startswith("api:"))
    assert str(world.sock) in api_line and f"127.0.0.1:{world.port}" in api_line
    assert f"127.0.0.1:{world.busy}: unavailable" in api_line


def test_busy_address_logged_once_and_the_catalog_goes_on(world: World) -> None:
    events = [e for e in world.daemon.log_events() if e.get("event") == "api.unavailable"]
    assert len(events) == 1 and events[0]["address"] == f"127.0.0.1:{world.busy}"
    fresh = world.base / "inputs" / "fresh.png"
    fresh.write_bytes(b"new")
    wait_until(lambda: world.daemon.is_live(fresh), 15, what="fresh catalogued")
    assert world.daemon.proc is not None and world.daemon.proc.poll() is None
    world.daemon.send(signal.SIGUSR1)  # a reconcile: the daemon answers its signals, not uvicorn
    with world.unix() as c:
        assert c.get("/healthz").status_code == 200


def test_a_reload_that_changes_the_api_says_a_restart_is_needed(world: World) -> None:
    d = world.daemon
    text = d.config.read_text()
    d.config.write_text(text.replace(f', "127.0.0.1:{world.busy}"', ""))
    try:
        d.send(signal.SIGHUP)
        wait_until(
            lambda: any(e.get("event") == "config.restart_needed" for e in d.log_events()),
            20,
            what="config.restart_needed",
        )
    finally:
        d.config.write_text(text)
    with world.unix() as c:  # still serving, with the token it started with
        assert c.get("/api/tags").status_code == 200


def test_a_root_that_goes_and_comes_back_is_on_the_feed(world: World) -> None:
    """Last in the module: the `inputs` root goes away and comes back."""
    reader = SseReader(str(world.sock), TOKEN)
    inputs = world.base / "inputs"
    away = world.base / "inputs.away"
    try:
        wait_until(lambda: reader.status == 200, 10, what="the stream")
        inputs.rename(away)
        wait_until(lambda: reader.named("root.unavailable"), 20, what="root.unavailable")
        gone = reader.named("root.unavailable")[0].data
        assert gone["root"] == "inputs" and gone["missing"] >= 1
        assert world.daemon.is_missing(inputs / "photo.png")
        away.rename(inputs)
        wait_until(lambda: reader.named("root.restored"), 30, what="root.restored")
        assert reader.named("root.restored")[0].data == {"root": "inputs"}
        assert world.daemon.is_live(inputs / "photo.png")  # restored before it was announced
    finally:
        reader.close()


def test_a_new_file_s_hash_arrives_on_events_after_the_row_has_it(world: World) -> None:
    fresh = world.base / "models" / "sd" / "delta.safetensors"
    reader = SseReader(str(world.sock), TOKEN)
    hash_when_seen: list[object] = []

    def hashed() -> bool:
        for e in reader.named("hash.recorded"):
            if str(fresh) in e.data["paths"]:
                rows = world.daemon.query(
                    "SELECT a.hash FROM assets a JOIN asset_cache_states c ON c.asset_id = a.id "
                    "WHERE c.file_path = ?",
                    str(fresh),
                )
                hash_when_seen.append(rows[0][0] if rows else None)
                return True
        return False

    try:
        wait_until(lambda: reader.status == 200, 10, what="the stream")
        fresh.write_bytes(b"delta" * 1000)
        wait_until(hashed, 30, what="hash.recorded on /api/events")
        event = next(e for e in reader.named("hash.recorded") if str(fresh) in e.data["paths"])
        digest = event.data["hashes"][event.data["paths"].index(str(fresh))]
        assert hash_when_seen == [digest] and str(digest).startswith("blake3:")  # committed first
        assert event.data["root"] == "models" and event.data["outcome"] == "hashed"
        assert int(world.info_id(fresh)) in event.data["asset_info_ids"]
        assert event.id is not None
    finally:
        reader.close()


def _latency(client: httpx.Client) -> tuple[float, float]:
    """``assetd_batch_latency_seconds``: (count, sum)."""
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    samples = {s.name: s.value for s in families["assetd_batch_latency_seconds"].samples}
    return samples["assetd_batch_latency_seconds_count"], samples[
        "assetd_batch_latency_seconds_sum"
    ]


def test_batch_latency_runs_from_the_event_seen_to_the_commit(world: World) -> None:
    """The histogram's sum grows by at least the quiet window (fixed at 20 ms here by
    ``min_quiet_ms = quiet_ms``) per batch: it is measured from the event, not from the flush."""
    with world.unix() as c:
        count0, sum0 = _latency(c)
        fresh = world.base / "inputs" / "latency.png"
        fresh.write_bytes(b"late")
        wait_until(lambda: world.daemon.is_live(fresh), 15, what="latency.png catalogued")
        wait_until(lambda: _latency(c)[0] > count0, 10, what="the batch observed")
        count1, sum1 = _latency(c)
    assert sum1 - sum0 >= 0.020 * (count1 - count0)


def _status_api_line(config: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
    out = subprocess.run(
        [sys.executable, "-m", "assetd", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return next(line for line in out.stdout.splitlines() if line.startswith("api:"))


def test_a_busy_port_is_retried_until_it_is_free(tmp_path: Path) -> None:
    """The real daemon, its TCP port held by this test: `api.unavailable` once (log and
    status); once the port is freed the retry binds it (the 30 s
    interval shortened by the test-only ASSETD_TEST_API_RETRY_S; its default is checked in
    test_api_units.py)."""
    root = tmp_path / "lib"
    root.mkdir()
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    daemon = Daemon(tmp_path, {"lib": root}, f'[api]\nlisten = ["127.0.0.1:{port}"]\n')
    try:
        daemon.start(env={"ASSETD_TEST_API_RETRY_S": "0.3"})

        def unavailable() -> list[dict[str, object]]:
            return [e for e in daemon.log_events() if e.get("event") == "api.unavailable"]

        wait_until(unavailable, 20, what="api.unavailable")
        assert f"127.0.0.1:{port}: unavailable" in _status_api_line(daemon.config)
        holder.close()

        def answers() -> bool:
            try:
                with tcp_client(port) as c:
                    return c.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 20, what="/healthz on the freed port")
        assert len(unavailable()) == 1  # logged once, however many retries
        listening = [e for e in daemon.log_events() if e.get("event") == "api.listening"]
        assert listening and listening[-1]["retried"] is True
    finally:
        holder.close()
        code = daemon.stop()
        daemon.close()
    assert code == 0, daemon.log_text()[-3000:]
