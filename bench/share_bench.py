"""A share hashed once (DESIGN §7): bytes read by two real daemons on one PostgreSQL catalog, each
with a root on the same directory labelled ``shared``. Bytes read are the ``rchar`` of each
daemon's process tree (its hash children included) in ``/proc/PID/io``, from READY=1 until its
paths are all hashed; anything hashed before READY counts as read whole (an upper bound).

1. Host A catalogues and hashes a fresh share alone; then host B, started afterwards, catalogues
   it. Figure: B's bytes read against the share's bytes (goal < 5%); A's, the baseline.
2. Both hosts start at once on a fresh share. Figure: their bytes read together against the
   share's bytes (goal <= 1.3x). Baseline: the same with roots that carry no label (each host
   reads everything: about 2x).

    python bench/share_bench.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        [--files 300] [--size 51200]

Each part runs in a scratch database (created and dropped here). No assertions on figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.02)


def tree_rchar(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/io") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("rchar:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


class Host:
    """One ``assetd run`` with its own state directory and host id, on the shared catalog."""

    def __init__(self, work: Path, host: str, share: Path, url: str, label: str = "nas") -> None:
        self.host, self.url = host, url
        top = work / host
        top.mkdir()
        self.config = top / "assetd.toml"
        self.config.write_text(
            f'[daemon]\nhost = "{host}"\nstate_dir = "{top / "state"}"\n'
            f'[database]\nurl = "{url}"\n[api]\nlisten = []\n'
            f'[[roots]]\nname = "nas"\npath = "{share}"\nshared = "{label}"\n'
        )
        self.sock_path = top / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.sock_path))
        self.sock.setblocking(False)
        self.log = open(top / "daemon.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = False

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
        env["NOTIFY_SOCKET"] = str(self.sock_path)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assetd", "run", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def is_ready(self) -> bool:
        try:
            while True:
                if b"READY=1" in self.sock.recv(65536).split(b"\n"):
                    self.ready = True
        except BlockingIOError:
            pass
        assert self.proc is not None
        if self.proc.poll() is not None:
            sys.exit(f"{self.host} exited {self.proc.returncode}")
        return self.ready

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()
        self.sock.close()


def hashed(url: str, host: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM asset_cache_states c JOIN roots r "
                        "ON r.id = c.root_id JOIN assets a ON a.id = c.asset_id "
                        "WHERE r.host = :h AND a.hash IS NOT NULL AND NOT c.needs_verify "
                        "AND c.hashed_size_bytes = c.size_bytes"
                    ),
                    {"h": host},
                ).scalar_one()
            )
    except Exception:
        return 0  # no schema yet
    finally:
        engine.dispose()


def measure(hosts: list[Host], files: int, size: int) -> tuple[list[int], float]:
    """Start the hosts at once; each one's bytes read until all are hashed, and the seconds."""
    started = time.monotonic()
    for h in hosts:
        h.start()
    base: dict[str, int] = {}
    for h in hosts:
        wait(h.is_ready, 60, f"{h.host} READY")
        assert h.proc is not None
        base[h.host] = tree_rchar(h.proc.pid) - hashed(h.url, h.host) * size
    wait(lambda: all(hashed(h.url, h.host) == files for h in hosts), 600, "hashed")
    seconds = time.monotonic() - started
    out = []
    for h in hosts:
        assert h.proc is not None
        out.append(tree_rchar(h.proc.pid) - base[h.host])
    for h in hosts:
        h.stop()
    return out, seconds


def scratch(admin_url: str, name: str) -> tuple[str, Callable[[], None]]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def make_share(path: Path, files: int, size: int) -> None:
    for i in range(files):
        p = path / f"d{i % 10}" / f"f{i:05}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(size))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pg", required=True, metavar="URL", help="a PostgreSQL server (admin URL)")
    p.add_argument("--files", type=int, default=300)
    p.add_argument("--size", type=int, default=50 * 1024, help="bytes per file (51200)")
    args = p.parse_args()
    share_bytes = args.files * args.size
    load = os.getloadavg()
    lines = [
        f"`{shlex.join(['python', 'bench/share_bench.py', *sys.argv[1:]])}`",
        "",
        f"{platform.node()}, {os.cpu_count()} cores, load {load[0]:.1f}; share: {args.files} "
        f"files of {args.size} B = {share_bytes:,} B",
        "",
        "| part | host | bytes read | x share | seconds |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory(prefix="assetd-share-") as tmp:
        work = Path(tmp)
        for part in ("one after the other", "at once", "at once, no label (baseline)"):
            share = work / part.replace(" ", "-").replace(",", "") / "nas"
            make_share(share, args.files, args.size)
            url, drop = scratch(args.pg, f"assetd_share_bench_{os.getpid()}")
            try:
                if part == "one after the other":
                    [a_read], a_s = measure([Host(share.parent, "host-a", share, url)], **_n(args))
                    [b_read], b_s = measure([Host(share.parent, "host-b", share, url)], **_n(args))
                    rows = [("A (alone, fresh)", a_read, a_s), ("B (A hashed it)", b_read, b_s)]
                else:
                    label = "" if "baseline" in part else "nas"
                    hosts = [Host(share.parent, h, share, url, label) for h in ("host-a", "host-b")]
                    reads, s = measure(hosts, **_n(args))
                    rows = [("A", reads[0], s), ("B", reads[1], s), ("A + B", sum(reads), s)]
            finally:
                drop()
            for host, read, s in rows:
                lines.append(f"| {part} | {host} | {read:,} | {read / share_bytes:.4f} | {s:.1f} |")
    print("\n".join(lines))
    print(json.dumps({"share_bytes": share_bytes}), file=sys.stderr)
    return 0


def _n(args: argparse.Namespace) -> dict[str, int]:
    return {"files": args.files, "size": args.size}


if __name__ == "__main__":
    sys.exit(main())
