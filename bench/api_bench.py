"""HTTP API benchmark: the real ``assetd run`` serving a large catalog over its unix socket.

1. Pages (``--pages``): a catalog of ``--files`` (1,000,000) entries is written straight into a
   fresh SQLite catalog (as another host's root, so the daemon never touches those rows; the
   daemon itself watches one small root), then the daemon starts and serves it. Timed over
   ``--requests`` (200) requests each, client to response body read (httpx, keep-alive):
   ``GET /api/assets?limit=100`` by ``offset`` (random offsets over the first 100,000) and by
   cursor (following ``next_cursor`` from the first page), both at the default sort
   (``created_at desc``) and at ``sort=name``; plus the first request of a filter (its exact
   ``total`` counted, uncached) against the later ones (``total`` reused for 5 s). With
   ``--index``, indexes on ``asset_infos.created_at`` and ``.name`` (not in assetd's schema)
   are then created and the cursor pages measured again.
2. Start-up (``--startup``): time from spawning ``assetd run`` to ``READY=1`` and the daemon's
   VmRSS once idle, with the API (the default ``unix:api.sock``) and with ``listen = []``
   (``--runs`` each, 3), on a 1,000-file root.
3. Delete latency under load (``--latency``): ``--deletes`` (100) single unlinks in a 1,000-file
   root, t0 before ``os.unlink``, t1 when a 2 ms poll of the catalog sees ``is_missing = 1``;
   without API traffic, then with a client pulling ``GET /api/assets?limit=100`` 50 times a
   second.

No assertions on timing; a Markdown report (with the command line) on stdout.

    python bench/api_bench.py                      # everything, 1,000,000 entries
    python bench/api_bench.py --pages --files 200000
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


class Notify:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.path = path

    def wait_ready(self, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if b"READY=1" in self.sock.recv(65536).split(b"\n"):
                    return time.monotonic()
            except TimeoutError:
                continue
        raise SystemExit("no READY=1")

    def close(self) -> None:
        self.sock.close()


def write_config(base: Path, root: Path, api: str) -> Path:
    config = base / "assetd.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{base / "state"}"\n[hashing]\nenabled = false\n{api}\n'
        f'[[roots]]\nname = "live"\npath = "{root}"\n'
    )
    return config


def start(base: Path, config: Path) -> tuple[subprocess.Popen[bytes], float, float]:
    notify_path = base / f"notify-{time.monotonic_ns()}.sock"
    notify = Notify(notify_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
    env["NOTIFY_SOCKET"] = str(notify_path)
    log = open(base / "daemon.log", "ab")  # noqa: SIM115 - the child keeps it
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assetd", "run", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    ready = notify.wait_ready()
    notify.close()
    return proc, t0, ready


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_api(sock: Path, timeout: float = 60) -> httpx.Client:
    client = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://assetd", timeout=120
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code in (200, 503):
                return client
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("the API did not answer")


def fill_catalog(db: Path, files: int) -> None:
    """``files`` entries under another host's root: asset, cache state, info and a tag each."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    with conn:
        conn.execute(
            "INSERT INTO roots (host, name, path) VALUES ('bench-other-host', 'bulk', '/bulk')"
        )
        (root_id,) = conn.execute("SELECT id FROM roots WHERE name = 'bulk'").fetchone()
        conn.execute("INSERT OR IGNORE INTO tags (name) VALUES ('bulk')")
        base = 1 + (conn.execute("SELECT coalesce(max(id), 0) FROM assets").fetchone()[0])
        step = 50_000
        rng = random.Random(1)
        for start in range(0, files, step):
            ids = range(base + start, base + min(files, start + step))
            conn.executemany(
                "INSERT INTO assets (id, size_bytes, created_at) VALUES (?, ?, ?)",
                [(i, rng.randrange(1, 1 << 30), "2026-01-01 00:00:00") for i in ids],
            )
            conn.executemany(
                "INSERT INTO asset_cache_states (asset_id, root_id, file_path, size_bytes) "
                "VALUES (?, ?, ?, 1)",
                [(i, root_id, f"/bulk/d{i % 1000:03d}/f{i:08d}.bin") for i in ids],
            )
            stamp = "2026-01-01 00:{:02d}:{:02d}.{:06d}"
            conn.executemany(
                "INSERT INTO asset_infos (asset_id, name, created_at, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [
                    (i, f"f{rng.randrange(10**8):08d}.bin", t, t)
                    for i in ids
                    for t in [stamp.format(i // 600_000 % 60, i // 10_000 % 60, i % 10_000)]
                ],
            )
        conn.execute(
            "INSERT INTO asset_info_tags (asset_info_id, tag_name, origin) "
            "SELECT id, 'bulk', 'automatic' FROM asset_infos"
        )
    conn.close()


def timed(client: httpx.Client, url: str, params: dict[str, object]) -> tuple[float, dict]:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    r = client.get(url, params=params)  # type: ignore[arg-type]
    body = r.json()
    elapsed = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200, r.text
    return elapsed, body


def figures(ms: list[float]) -> str:
    return f"p50 {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms"


def measure_with_indexes(db: Path, client: httpx.Client, requests: int) -> list[str]:
    """What a schema revision adding sort indexes would give: created here, outside the daemon
    (not part of assetd's schema), then the cursor pages measured again."""
    conn = sqlite3.connect(db, timeout=60)
    with conn:
        conn.execute("CREATE INDEX IF NOT EXISTS bench_infos_created ON asset_infos (created_at)")
        conn.execute("CREATE INDEX IF NOT EXISTS bench_infos_name ON asset_infos (name)")
    conn.close()
    out = []
    for sort in ("created_at", "name"):
        ms, cursor = [], None
        for _ in range(requests):
            params: dict[str, object] = {"limit": 100, "sort": sort}
            if cursor:
                params["after"] = cursor
            elapsed, body = timed(client, "/api/assets", params)
            ms.append(elapsed)
            cursor = body.get("next_cursor")
        out.append(
            f"| cursor pages, sort={sort}, with an index on it ({requests}) | {figures(ms)} |"
        )
    return out


# The count of a name_contains filter's total as assetd ran it before commit 1302e0d (joined to
# assets, lower() per row, the live-path probe first) and as it runs it now: the baseline of the
# row above, timed here with sqlite3 in the same run, interleaved, so the machine's load weighs
# on both alike.
_LIVE = (
    "EXISTS (SELECT c.id FROM asset_cache_states c "
    "WHERE c.asset_id = asset_infos.asset_id AND c.is_missing = 0)"
)
COUNT_BEFORE = (
    "SELECT count(*) FROM asset_infos JOIN assets ON assets.id = asset_infos.asset_id "
    f"WHERE {_LIVE} AND lower(asset_infos.name) LIKE ? ESCAPE '\\'"
)
COUNT_NOW = (
    f"SELECT count(*) FROM asset_infos WHERE asset_infos.name LIKE ? ESCAPE '\\' AND {_LIVE}"
)


def count_baseline(db: Path, filters: int = 10) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    before: list[float] = []
    now: list[float] = []
    try:
        for n in range(50, 50 + filters):  # other filters than the requests above used
            for sql, into in ((COUNT_BEFORE, before), (COUNT_NOW, now)):
                t0 = time.perf_counter()
                conn.execute(sql, (f"%f{n:02d}%",)).fetchone()
                into.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    ratio = statistics.median(before) / statistics.median(now)
    return [
        f"| a new filter's count, SQL before 1302e0d, sqlite3 ({filters}) | {figures(before)} |",
        f"| a new filter's count, SQL now, sqlite3, interleaved ({filters}) | {figures(now)} "
        f"({ratio:.1f}x faster) |",
    ]


def part_pages(
    base: Path, files: int, requests: int, index: bool, only_index: bool = False
) -> list[str]:
    root = base / "live"
    root.mkdir(parents=True)
    config = write_config(base, root, "")
    subprocess.run(
        [sys.executable, "-m", "assetd", "scan", "--config", str(config)],
        check=True,
        capture_output=True,
    )
    t0 = time.monotonic()
    fill_catalog(base / "state" / "catalog.db", files)
    print(f"catalog of {files} entries written in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    proc, _, _ = start(base, config)
    out = [f"Catalog: {files:,} entries (asset + cache state + info + one tag each), SQLite.", ""]
    out += ["| request | figures |", "| --- | --- |"]
    try:
        client = wait_api(base / "state" / "api.sock")
        rng = random.Random(2)
        for sort in () if only_index else ("created_at", "name"):
            first, _ = timed(client, "/api/assets", {"limit": 100, "sort": sort})
            out.append(f"| first page, sort={sort} (exact total counted) | {first:.0f} ms |")
            by_offset = [
                timed(
                    client,
                    "/api/assets",
                    {"limit": 100, "sort": sort, "offset": rng.randrange(0, 100_000)},
                )[0]
                for _ in range(requests)
            ]
            out.append(f"| offset pages, sort={sort} ({requests}) | {figures(by_offset)} |")
            by_cursor, cursor = [], None
            for _ in range(requests):
                params: dict[str, object] = {"limit": 100, "sort": sort}
                if cursor:
                    params["after"] = cursor
                ms, body = timed(client, "/api/assets", params)
                by_cursor.append(ms)
                cursor = body.get("next_cursor")
            out.append(f"| cursor pages, sort={sort} ({requests}) | {figures(by_cursor)} |")
            print(f"sort={sort} done", file=sys.stderr)
        total = [
            timed(client, "/api/assets", {"limit": 100, "name_contains": f"f{n:02d}"})[0]
            for n in range(0 if only_index else 20)
        ]
        if total:
            row = "first page of 20 new filters (name_contains; total counted)"
            out.append(f"| {row} | {figures(total)} |")
            out += count_baseline(base / "state" / "catalog.db")
        if index:
            out += measure_with_indexes(base / "state" / "catalog.db", client, requests)
        client.close()
    finally:
        stop(proc)
    return out


def part_startup(base: Path, runs: int) -> list[str]:
    root = base / "startup-root"
    root.mkdir()
    for i in range(1000):
        (root / f"f{i:04d}").write_bytes(b"x")
    out = ["| API | time to READY=1 (median) | VmRSS once idle (median) |", "| --- | --- | --- |"]
    for label, api in (("off (`listen = []`)", "[api]\nlisten = []\n"), ("on (default)", "")):
        ready_s, rss = [], []
        for run in range(runs):
            run_base = base / f"startup-{label[:3].strip()}-{run}"
            run_base.mkdir()
            config = write_config(run_base, root, api)
            proc, t0, ready = start(run_base, config)
            ready_s.append(ready - t0)
            if api == "":
                wait_api(run_base / "state" / "api.sock").close()
            time.sleep(3)  # idle: the start-up reconcile and imports done
            rss.append(rss_mib(proc.pid))
            stop(proc)
        out.append(
            f"| {label} | {statistics.median(ready_s):.2f} s | {statistics.median(rss):.1f} MiB |"
        )
    return out


def part_latency(base: Path, deletes: int) -> list[str]:
    root = base / "lat-root"
    root.mkdir()
    for i in range(1000):
        (root / f"f{i:04d}").write_bytes(b"x")
    lat_base = base / "lat"
    lat_base.mkdir()
    config = write_config(lat_base, root, "")
    proc, _, _ = start(lat_base, config)
    db = sqlite3.connect(f"file:{lat_base / 'state' / 'catalog.db'}?mode=ro", uri=True)
    out = ["| API traffic | delete -> missing p50 | max |", "| --- | --- | --- |"]
    try:
        client = wait_api(lat_base / "state" / "api.sock")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = db.execute("SELECT count(*) FROM asset_cache_states").fetchone()[0]
            if n >= 1000:
                break
            time.sleep(0.05)
        names = iter(range(1000))
        for label, load in (("none", False), ("50 requests/s", True)):
            stop_load = threading.Event()
            pulled = [0]

            def pull(stop_load: threading.Event = stop_load, pulled: list[int] = pulled) -> None:
                next_at = time.monotonic()
                while not stop_load.is_set():
                    client.get("/api/assets", params={"limit": 100})
                    pulled[0] += 1
                    next_at += 0.02
                    time.sleep(max(0.0, next_at - time.monotonic()))

            loader = threading.Thread(target=pull) if load else None
            if loader:
                loader.start()
            ms = []
            for _ in range(deletes):
                path = root / f"f{next(names):04d}"
                t0 = time.perf_counter()
                path.unlink()
                while True:
                    row = db.execute(
                        "SELECT is_missing FROM asset_cache_states WHERE file_path = ?",
                        (str(path),),
                    ).fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.002)
                ms.append((time.perf_counter() - t0) * 1000)
            stop_load.set()
            if loader:
                loader.join()
            extra = f" ({pulled[0]} requests served meanwhile)" if load else ""
            out.append(f"| {label}{extra} | {statistics.median(ms):.1f} ms | {max(ms):.1f} ms |")
        client.close()
    finally:
        db.close()
        stop(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", action="store_true")
    parser.add_argument("--startup", action="store_true")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=100)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--index", action="store_true", help="also measure with sort indexes (not in the schema)"
    )
    parser.add_argument("--only-index", action="store_true", help="--index, skipping the rest")
    args = parser.parse_args()
    args.pages = args.pages or args.only_index
    everything = not (args.pages or args.startup or args.latency)
    base = Path(tempfile.mkdtemp(prefix="assetd-api-bench-"))
    report = [
        "## HTTP API",
        "",
        f"`{shlex.join(['python', 'bench/api_bench.py', *sys.argv[1:]])}` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})",
        "",
    ]
    try:
        if args.pages or everything:
            report += [
                "### Pages",
                "",
                *part_pages(
                    base / "pages",
                    args.files,
                    args.requests,
                    args.index or args.only_index,
                    args.only_index,
                ),
                "",
            ]
        if args.startup or everything:
            report += ["### Start-up", "", *part_startup(base, args.runs), ""]
        if args.latency or everything:
            report += ["### Delete latency under API load", "", *part_latency(base, args.deletes)]
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    print("\n".join(report))


if __name__ == "__main__":
    main()
