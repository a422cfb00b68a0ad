"""Two hosts deleting at once on one PostgreSQL catalog (issue 16), against one host alone.

Real daemons (``python -m assetd run``, different ``[daemon] host`` ids, hashing off, each its
own root of ``--files`` (20,000) small files in ``--dirs`` (200) directories), on a scratch
database of the server ``--pg`` names:

1. One host alone: catalogued, then its files deleted (unlinked by this process); the time
   from the first unlink to every row of the host missing (polled every 20 ms).
2. Two hosts at once, on a fresh scratch database: both catalogued, then both trees' files
   deleted at the same moment by two threads; the time from the first unlink to every row of
   both hosts missing. Goal: within 2x of (1). Each daemon's log is checked for errors, failed
   batches and counted for retried ones.

The unlinks' own time (the deleting threads', start to end) is printed beside, as the floor.
No assertions on timing.

    python bench/hosts_bench.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from live_bench import NotifySocket, wait_for
from pg_bench import scratch_db

SCRATCH = f"assetd_hostsbench_{os.getpid()}"


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_tree(top: str, files: int, dirs: int) -> list[str]:
    paths = []
    for i in range(files):
        d = os.path.join(top, f"d{i % dirs:04}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, f"f{i:06}.bin")
        with open(p, "wb") as f:
            f.write(b"x" * (1 + i % 97))
        paths.append(p)
    return paths


class Host:
    """``assetd run`` as one host, its root ``root``, the catalog at ``url``."""

    def __init__(self, work: str, host: str, root: str, url: str) -> None:
        self.work, self.host, self.root = work, host, root
        os.makedirs(work)
        self.config = os.path.join(work, "assetd.toml")
        self.log_path = os.path.join(work, "daemon.log")
        q = json.dumps
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(
                f"[daemon]\nhost = {q(host)}\nstate_dir = {q(os.path.join(work, 'state'))}\n"
                f"[database]\nurl = {q(url)}\n[hashing]\nenabled = false\n[api]\nlisten = []\n"
                f'[[roots]]\nname = "files"\npath = {q(root)}\n'
            )
        self.notify = NotifySocket(os.path.join(work, "notify.sock"))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
        env["NOTIFY_SOCKET"] = self.notify.path
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "assetd", "run", "--config", self.config],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def wait_ready(self) -> None:
        proc = self.proc
        assert proc is not None
        wait_for(lambda: self.notify.has("READY=1") or proc.poll() is not None, 120, "READY=1")
        if proc.poll() is not None:
            raise SystemExit(f"{self.host} exited with {proc.returncode}")

    def stop(self) -> int | None:
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.notify.close()
        return code

    def events(self) -> list[dict[str, Any]]:
        out = []
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    out.append(event)
        return out


def counts(url: str) -> dict[str, tuple[int, int]]:
    """host -> (live rows, missing rows), one plain psycopg query."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(
        f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    ) as con:
        rows = con.execute(
            "SELECT r.host, count(*) FILTER (WHERE NOT c.is_missing), "
            "count(*) FILTER (WHERE c.is_missing) FROM asset_cache_states c "
            "JOIN roots r ON r.id = c.root_id GROUP BY r.host"
        ).fetchall()
    return {str(h): (int(live), int(missing)) for h, live, missing in rows}


def delete_all(groups: list[list[str]]) -> float:
    """Unlink each group's files in its own thread, all starting together; seconds taken."""
    go = threading.Barrier(len(groups) + 1)

    def run(paths: list[str]) -> None:
        go.wait()
        for p in paths:
            os.remove(p)

    threads = [threading.Thread(target=run, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    go.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def scenario(work: str, url: str, names: list[str], files: int, dirs: int) -> dict[str, Any]:
    """Hosts ``names`` on the catalog ``url``, catalogued, then all deleting at once."""
    hosts = []
    trees = {}
    for name in names:
        root = os.path.join(work, name, "files")
        trees[name] = make_tree(root, files, dirs)
        hosts.append(Host(os.path.join(work, name, "daemon"), name, root, url))
    try:
        for h in hosts:
            h.start()
        for h in hosts:
            h.wait_ready()
        want = {n: (files, 0) for n in names}
        wait_for(lambda: counts(url) == want, 600, "every host catalogued", every=0.2)
        time.sleep(1)  # the start-up reconciles' last commits (status rows), not the files
        os.sync()
        note(f"{' + '.join(names)}: deleting {files:,} files each")
        gone = {n: (0, files) for n in names}
        started = time.perf_counter()
        unlink = delete_all([trees[n] for n in names])
        wait_for(lambda: counts(url) == gone, 600, "every host's deletions applied", every=0.02)
        seconds = time.perf_counter() - started
    finally:
        codes = [h.stop() for h in hosts]
    out: dict[str, Any] = {"seconds": seconds, "unlink": unlink, "codes": codes}
    events = [e for h in hosts for e in h.events()]
    out["errors"] = [e for e in events if e.get("level") in ("error", "critical")]
    out["failed"] = sum(1 for e in events if e.get("event") == "batch.failed")
    out["retried"] = sum(1 for e in events if e.get("event") == "batch.retried")
    out["batches"] = sum(1 for e in events if e.get("event") == "batch.applied")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pg", metavar="URL", required=True)
    p.add_argument("--files", type=int, default=20_000, help="files per host (20,000)")
    p.add_argument("--dirs", type=int, default=200, help="directories per host (200)")
    p.add_argument(
        "--dir",
        default="/tmp",
        help="where the trees and the daemons' state go (/tmp); a tmpfs keeps a slow disk's "
        "unlinks from hiding the daemons' time",
    )
    args = p.parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    loads = [os.getloadavg()]
    work = tempfile.mkdtemp(prefix="assetd-hostsbench-", dir=args.dir)
    try:
        with scratch_db(args.pg, SCRATCH + "_1") as url:
            note("one host alone")
            alone = scenario(os.path.join(work, "alone"), url, ["host-a"], args.files, args.dirs)
        with scratch_db(args.pg, SCRATCH + "_2") as url:
            note("two hosts at once")
            both = scenario(
                os.path.join(work, "both"), url, ["host-a", "host-b"], args.files, args.dirs
            )
        loads.append(os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = both["seconds"] / alone["seconds"]
    lines = [
        "## Two hosts deleting at once on one PostgreSQL catalog (bench/hosts_bench.py)",
        "",
        "```",
        command,
        "```",
        "",
        f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1/5/15 "
        "min) before "
        + " ".join(f"{x:.2f}" for x in loads[0])
        + ", after "
        + " ".join(f"{x:.2f}" for x in loads[-1])
        + ".",
        "",
        "| run | first unlink -> every row missing (s) | the unlinks themselves (s) | batches "
        "applied | retried | failed | errors logged | exit codes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for title, r in (
        (f"one host, {args.files:,} deletions", alone),
        (f"two hosts, {args.files:,} deletions each", both),
    ):
        lines.append(
            f"| {title} | {r['seconds']:.2f} | {r['unlink']:.2f} | {r['batches']} | "
            f"{r['retried']} | {r['failed']} | {len(r['errors'])} | {r['codes']} |"
        )
    ok = ratio <= 2 and not both["errors"] and not both["failed"]
    lines += [
        "",
        f"Two hosts at once: {ratio:.2f}x one host alone's time (goal <= 2x, both converge, no "
        f"error: {'met' if ok else 'NOT met'}).",
    ]
    for e in (alone["errors"] + both["errors"])[:5]:
        lines.append(f"- error logged: {json.dumps(e)[:300]}")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
