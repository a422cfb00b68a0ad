"""Hashing benchmark: blake3 throughput of one large file, and files/s of many small files
hashed and recorded into a real SQLite catalog, each against a baseline measured in the same run.

Figures (page cache warm; best of ``--repeat`` rounds, the runs of a round interleaved):

1. One large file (default 1 GiB of random bytes): ``hash_file`` as the daemon runs it
   (``update_mmap`` with blake3's threads, in the persistent child process of
   :mod:`assetd.hashing.child`), ``hash_file`` with the mmap in-process, and the rate-limited
   chunked path, against ``b3sum`` (Debian package b3sum; skipped if absent) and a single
   ``blake3(max_threads=AUTO).update_mmap`` call in this process. Target: the daemon's path at
   >= 0.90x b3sum.
2. Many small files (default 10,000 of 4 KiB, distinct contents) seeded into a fresh SQLite
   catalog: ``hash_pending`` (``assetd hash``: look-up, open, fstat, read, fstat, then the
   digests applied up to 1,024 to a transaction) and the daemon's ``Hasher`` threads, against
   a raw loop of open+read+blake3 over the same files. The catalog's hashes are reset between runs.

No assertions on timing: the script prints figures and ratios, and checks every digest.

    python bench/hash_bench.py
    python bench/hash_bench.py --size-mib 256 --files 2000 --repeat 1    # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import blake3

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from assetd.catalog.engine import SessionFactory
    from assetd.catalog.roots import RootSpec
    from assetd.config import RootConfig

HOST = "bench-host"


def note(message: str) -> None:
    """Progress, to stderr, so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


@dataclass
class Figures:
    large_size: int = 0
    files: int = 0
    file_size: int = 0
    runs: dict[str, list[float]] = field(default_factory=dict)
    b3sum_version: str | None = None

    def add(self, key: str, seconds: float) -> None:
        self.runs.setdefault(key, []).append(seconds)

    def best(self, key: str) -> float:
        return min(self.runs[key])


# --------------------------------------------------------------------------- 1. large file


def make_large(path: str, size: int) -> str:
    if os.path.exists(path) and os.path.getsize(path) == size:
        return "reused"
    note(f"writing {size / 2**20:,.0f} MiB of random bytes to {path}")
    chunk = 16 << 20
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n
    return "written"


def b3sum(path: str) -> str:
    out = subprocess.run(["b3sum", "--no-names", path], check=True, capture_output=True)
    return "blake3:" + out.stdout.decode().strip()


def bench_large(fig: Figures, path: str, repeat: int) -> None:
    from assetd.hashing.child import ChildHasher
    from assetd.hashing.digest import hash_file

    with open(path, "rb") as f:  # warm the page cache
        while f.read(16 << 20):
            pass
    have_b3sum = shutil.which("b3sum") is not None
    if have_b3sum:
        fig.b3sum_version = subprocess.run(
            ["b3sum", "--version"], capture_output=True, text=True
        ).stdout.strip()

    def single_call() -> str:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        h.update_mmap(path)
        return "blake3:" + h.hexdigest()

    with ChildHasher() as child:
        child(os.path.abspath(__file__))  # start the child outside the timings
        runs: list[tuple[str, Callable[[], str]]] = [
            ("daemon", lambda: hash_file(path, large=child)),
            ("inprocess", lambda: hash_file(path)),
            ("single_call", single_call),
            ("chunked", lambda: hash_file(path, throttle=lambda n: None)),
        ]
        if have_b3sum:
            runs.insert(0, ("b3sum", lambda: b3sum(path)))
        expected: str | None = None
        for rnd in range(1, repeat + 1):
            note(f"large file: round {rnd} of {repeat}")
            for key, fn in runs:
                seconds, digest = timed(fn)
                expected = expected or digest
                if digest != expected:
                    raise SystemExit(f"{key}: digest {digest} != {expected}")
                fig.add(f"large_{key}", seconds)


# --------------------------------------------------------------------------- 2. small files


def make_small_tree(tree: str, files: int, size: int) -> None:
    shutil.rmtree(tree, ignore_errors=True)
    per_dir = 1000
    for i in range(files):
        d = os.path.join(tree, f"d{i // per_dir:04d}")
        if i % per_dir == 0:
            os.makedirs(d)
        with open(os.path.join(d, f"f{i:07d}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "big") + os.urandom(size - 8))


def raw_hash_all(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append("blake3:" + blake3.blake3(f.read()).hexdigest())
    return out


def catalogued(db: str, rc: RootConfig) -> tuple[Engine, SessionFactory, RootSpec]:
    """A fresh SQLite catalog at ``db`` with the root ``rc`` registered and scanned once."""
    from assetd.catalog.engine import make_engine, session_factory
    from assetd.catalog.roots import register_roots
    from assetd.catalog.schema import Upgrade, ensure_schema
    from assetd.reconcile import sync_cache_states_with_filesystem

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    engine = make_engine(f"sqlite:///{db}")
    ensure_schema(engine, Upgrade.CREATE)
    sessions = session_factory(engine)
    with sessions() as s, s.begin():
        [root] = register_roots(s, HOST, [rc])
    with sessions() as s:
        sync_cache_states_with_filesystem(s, [root])
    return engine, sessions, root


def bench_small(fig: Figures, work: str, files: int, size: int, repeat: int) -> None:
    from sqlalchemy import text

    from assetd import log
    from assetd.config import RootConfig
    from assetd.hashing.background import Hasher
    from assetd.hashing.run import hash_pending

    log.configure_logging("json", "warning", stream=sys.stderr)
    tree = os.path.join(work, "small")
    note(f"writing {files:,} files of {size:,} bytes under {tree}")
    make_small_tree(tree, files, size)
    rc = RootConfig(name="bench", path=tree, tags=("b",))
    engine, sessions, root = catalogued(os.path.join(work, "catalog.db"), rc)
    paths = sorted(os.path.join(d, name) for d, _, names in os.walk(tree) for name in names)
    expected = dict(zip(paths, raw_hash_all(paths), strict=True))

    def reset() -> None:
        with sessions() as s, s.begin():
            s.execute(text("UPDATE assets SET hash = NULL"))

    def check() -> None:
        with sessions() as s:
            rows = s.execute(
                text(
                    "SELECT c.file_path, a.hash FROM asset_cache_states c "
                    "JOIN assets a ON a.id = c.asset_id"
                )
            ).all()
        got: dict[str, str | None] = {str(p): h for p, h in rows}
        if got != expected:
            bad = [p for p in expected if got.get(p) != expected[p]][:3]
            raise SystemExit(f"catalog hashes differ from raw ones, e.g. {bad}")

    def run_pending() -> None:
        result = hash_pending(sessions, [root])
        if result.files != files:
            raise SystemExit(f"hash_pending recorded {result.files} of {files}")

    def run_hasher(workers: int) -> Callable[[], None]:
        def run() -> None:
            hasher = Hasher(sessions, [root], workers=workers, min_refetch=0, low_priority=False)
            hasher.start()
            try:
                while hasher.hashed < files:
                    time.sleep(0.005)
            finally:
                hasher.stop(10)

        return run

    for rnd in range(1, repeat + 1):
        note(f"small files: round {rnd} of {repeat}")
        for key, fn in (
            ("pending", run_pending),
            ("hasher1", run_hasher(1)),
            ("hasher2", run_hasher(2)),
        ):
            reset()
            os.sync()
            cpu = time.process_time()
            seconds, _ = timed(fn)
            fig.add(f"small_{key}_cpu", time.process_time() - cpu)  # every thread's
            check()
            fig.add(f"small_{key}", seconds)
        cpu = time.process_time()
        seconds, digests = timed(lambda: raw_hash_all(paths))
        fig.add("small_raw_cpu", time.process_time() - cpu)
        if digests != [expected[p] for p in paths]:
            raise SystemExit("raw digests changed between runs")
        fig.add("small_raw", seconds)
    engine.dispose()


def bench_copies(work: str, copies: int, dirs: int = 20) -> str:
    """``copies`` empty files (one content) in ``dirs`` folders of a ``tags_from_dirs`` root:
    `hash_pending` merges every copy into one asset; against the raw loop over the same files."""
    from sqlalchemy import text

    from assetd import log
    from assetd.config import RootConfig
    from assetd.hashing.run import hash_pending

    log.configure_logging("json", "warning", stream=sys.stderr)
    tree = os.path.join(work, "copies")
    shutil.rmtree(tree, ignore_errors=True)
    note(f"writing {copies:,} empty files in {dirs} directories under {tree}")
    for i in range(copies):
        d = os.path.join(tree, f"d{i % dirs:02d}")
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, f"f{i:07d}.txt"), "wb").close()
    rc = RootConfig(name="copies", path=tree, tags=("b",), tags_from_dirs=True)
    engine, sessions, root = catalogued(os.path.join(work, "copies.db"), rc)
    paths = sorted(os.path.join(d, name) for d, _, names in os.walk(tree) for name in names)
    note(f"hash_pending over {copies:,} copies")
    cpu = time.process_time()
    seconds, result = timed(lambda: hash_pending(sessions, [root]))
    cpu = time.process_time() - cpu
    with sessions() as s:
        n_assets = s.execute(text("SELECT count(*) FROM assets")).scalar_one()
        short = s.execute(  # infos missing one of the root's and directories' tags
            text(
                "SELECT count(*) FROM asset_infos i WHERE (SELECT count(*) FROM asset_info_tags "
                "t WHERE t.asset_info_id = i.id AND t.origin = 'automatic') <> :n"
            ),
            {"n": 1 + dirs},
        ).scalar_one()
    engine.dispose()
    if result.files != copies or n_assets != 1 or short:
        raise SystemExit(f"copies: {result.outcomes}, {n_assets} assets, {short} infos short")
    raw, _ = timed(lambda: raw_hash_all(paths))
    return "\n".join(
        [
            f"### {copies:,} copies of one content (empty files in {dirs} directories, "
            "`tags_from_dirs`), into a fresh SQLite catalog",
            "",
            "| run | seconds | files/s | CPU-seconds |",
            "| --- | ---: | ---: | ---: |",
            f"| `hash_pending`: 1 hashed, {copies - 1:,} merged into it | {seconds:.2f} | "
            f"{copies / seconds:,.0f} | {cpu:.2f} |",
            f"| raw loop: open + read + blake3, no catalog | {raw:.3f} | {copies / raw:,.0f} | |",
            "",
            f"One asset at the end; every info carries the root's tag and the {dirs} "
            "directories' tags (checked).",
        ]
    )


# --------------------------------------------------------------------------- report


def report(fig: Figures, command: str, how: str) -> str:
    import sqlalchemy

    lines: list[str] = []
    add = lines.append
    gib = fig.large_size / 2**30
    add("## assetd hashing benchmark")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(
        f"{platform.platform()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"blake3 {getattr(blake3, '__version__', '?')}, SQLite {sqlite3.sqlite_version}, "
        f"SQLAlchemy {sqlalchemy.__version__}; {fig.b3sum_version or 'b3sum not installed'}. "
        f"Page cache warm; best of {len(next(iter(fig.runs.values())))} round(s), runs "
        f"interleaved. Load average (1 min) at the end: {os.getloadavg()[0]:.2f}."
    )
    add("")
    add(f"### 1. One {gib:,.2f} GiB file ({how})")
    add("")
    base_key = "large_b3sum" if "large_b3sum" in fig.runs else "large_single_call"
    base = fig.best(base_key)
    base_name = "b3sum" if base_key == "large_b3sum" else "the single update_mmap call"
    add(f"| run | seconds | GiB/s | rate / {base_name}'s | every run (s) |")
    add("| --- | ---: | ---: | ---: | --- |")
    titles = {
        "large_b3sum": "`b3sum --no-names FILE` (mmap, multithreaded; process start included)",
        "large_daemon": "`hash_file` as the daemon runs it: update_mmap + AUTO in the child",
        "large_inprocess": "`hash_file`, update_mmap + AUTO in this process",
        "large_single_call": "`blake3(max_threads=AUTO).update_mmap(FILE)`, one call",
        "large_chunked": "`hash_file` rate-limited path (1 MiB reads, one thread), no limit",
    }
    for key, title in titles.items():
        if key not in fig.runs:
            continue
        secs = fig.best(key)
        ratio = base / secs
        mark = f"**{ratio:.2f}**" if key == "large_daemon" else f"{ratio:.2f}"
        if key == "large_daemon" and base_key == "large_b3sum":
            mark += f" (target >= 0.90: {'met' if ratio >= 0.90 else 'NOT met'})"
        runs = ", ".join(f"{v:.3f}" for v in fig.runs[key])
        add(f"| {title} | {secs:.3f} | {gib / secs:.2f} | {mark} | {runs} |")
    add("")
    n = fig.files
    add(f"### 2. {n:,} files of {fig.file_size:,} bytes, recorded into a fresh SQLite catalog")
    add("")
    raw = fig.best("small_raw")
    add("| run | seconds | files/s | rate / raw's | every run (s) |")
    add("| --- | ---: | ---: | ---: | --- |")
    titles = {
        "small_pending": "`hash_pending` (`assetd hash`): fstat, read, fstat; <= 1,024 a tx",
        "small_hasher1": "daemon `Hasher`, 1 worker (nice not applied here)",
        "small_hasher2": "daemon `Hasher`, 2 workers",
        "small_raw": "raw loop: open + read + blake3, no catalog",
    }
    for key, title in titles.items():
        secs = fig.best(key)
        runs = ", ".join(f"{v:.2f}" for v in fig.runs[key])
        add(f"| {title} | {secs:.2f} | {n / secs:,.0f} | {raw / secs:.3f} | {runs} |")
    add("")
    raw_cpu, pending_cpu = fig.best("small_raw_cpu"), fig.best("small_pending_cpu")
    add(
        f"CPU-seconds (best; this process's every thread, `time.process_time`; the large-file "
        f"child is not used for 4 KiB files): `hash_pending` {pending_cpu:.3f}, raw loop "
        f"{raw_cpu:.3f}: **{raw_cpu / pending_cpu:.3f}** of the raw loop's rate. On a loaded "
        f"machine the times above wait for the cores; these do not."
    )
    add("")
    add("Every catalog hash was checked against the raw loop's digest of the same file.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="large file size (default 1024)")
    p.add_argument("--files", type=int, default=10_000, help="small files (default 10,000)")
    p.add_argument("--file-kib", type=int, default=4, help="small file size (default 4)")
    p.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--dir", help="work directory (default: a new one in /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument(
        "--copies", type=int, default=0, help="only: hash N copies of one content (merges)"
    )
    args = p.parse_args(argv)
    command = shlex.join(["python", "bench/hash_bench.py", *(argv or sys.argv[1:])])
    work = args.dir or tempfile.mkdtemp(prefix="assetd-hash-bench-")
    os.makedirs(work, exist_ok=True)
    fig = Figures(args.size_mib << 20, args.files, args.file_kib << 10)
    if args.copies:
        try:
            print(f"## assetd hashing benchmark\n```\n{command}\n```\n", flush=True)
            print(bench_copies(work, args.copies), flush=True)
        finally:
            if not args.keep and not args.dir:
                shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        how = make_large(os.path.join(work, "large.bin"), fig.large_size)
        bench_large(fig, os.path.join(work, "large.bin"), args.repeat)
        bench_small(fig, work, args.files, fig.file_size, args.repeat)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print(report(fig, command, how), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
