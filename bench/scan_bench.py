"""Scan benchmark: assetd's first scan (seed), warm re-scan and peak RSS, against baselines
measured in the same run.

Figures (all in one run, on one generated tree of small files):

1. First scan: ``sync_cache_states_with_filesystem`` into a fresh SQLite catalog, in-process,
   from walk start to commit. Baselines: raw ``sqlite3`` executemany inserts of the same rows
   into the same tables of another freshly migrated catalog (one transaction, rows precomputed
   before the timer: pure insert time), and the same inserts timed together with a
   scandir+stat walk that produces them (the same work as a scan).
2. Re-scan of the unchanged tree (warm: the second of two), against
   ``find TREE -type f -printf '%s %T@ %p\\n'`` (warm: the second of two), and against the floor
   of a re-scan in Python (scandir+stat walk, one sqlite3 SELECT, a merge).
   Beside them, Watchman's initial crawl of the same tree (an isolated server per round,
   ``watch`` + ``clock`` with a sync timeout: until its view is complete; its CPU-seconds too),
   and whole-process ``python -m assetd scan`` of the tree into a fresh state directory, first
   and second (start-up included).
3. Peak RSS of a child process running the first scan, and one running the re-scan, against a
   child that only imports assetd and SQLAlchemy: ``getrusage(RUSAGE_CHILDREN).ru_maxrss``
   (KiB on Linux) read by a small stdlib-only launcher that runs just that child. (Linux carries
   the forking process's peak RSS into a child's ``ru_maxrss`` across exec, so the bench process
   itself, hundreds of MiB at 1M files, cannot be the parent.)

``--repeat K`` runs the in-process timings K times, each on fresh catalogs, and reports the best;
every run is listed, since a shared machine is noisy (the load average is printed too).

Optional: ``--pg URL`` (first scan and re-scans on PostgreSQL, in a scratch database
``assetd_bench``), ``--profile N`` (cProfile top N of a first scan and a re-scan, on a separate
catalog so the timed runs carry no profiler overhead).

No assertions on timing: the script prints figures and ratios. It checks only that each run
catalogued what it should.

    python bench/scan_bench.py                     # 100,000 files
    python bench/scan_bench.py --files 1000000     # the peak-RSS-at-1M figure

``--no-watchman`` leaves Watchman out (it is installed from Debian's packages when missing);
``--no-process`` the whole-process scans; if the ``scandir_rs`` module can be imported, its
walk of the tree (a native walker, not a dependency of assetd) is timed too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import math
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
from typing import Any
from unittest import mock

from watchman_side import Watchman

HOST = "bench-host"
ROOT_NAME = "bench"
ROOT_TAG = "bench"
LAYOUT_VERSION = 1  # bump when the generated tree changes shape
SCRATCH_PG_DB = f"assetd_bench_{os.getpid()}"  # per run: two runs at once never share one

_WORDS = ("model", "lora", "vae", "checkpoint", "embedding", "image", "clip-vision")
_EXTS = ("safetensors", "ckpt", "png", "json", "bin")
_FILLER = b"assetd-bench-" * 8  # sizes are 1..97 bytes, sliced from this


# --------------------------------------------------------------------------- output helpers


def note(message: str) -> None:
    """Progress, to stderr, so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def cpu_now() -> float:
    """CPU-seconds of this process (every thread) and of its children waited for (the walk's
    worker processes: a walk ends them before it returns)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


# --------------------------------------------------------------------------- the tree


def dir_of(j: int, groups: int) -> str:
    return f"g{j % groups:03d}/d{j:06d}"


def file_name(i: int) -> str:
    return f"{_WORDS[i % len(_WORDS)]}-{i:07d}.{_EXTS[i % len(_EXTS)]}"


def file_size(i: int) -> int:
    return 1 + (i * 37) % 97


def generate_tree(tree: str, files: int, dirs: int) -> None:
    """``files`` small files spread evenly over ``dirs`` leaf directories, themselves under
    about sqrt(dirs) group directories. Names and sizes depend only on the file's number."""
    groups = max(1, math.isqrt(dirs))
    os.makedirs(tree)
    for j in range(dirs):
        os.makedirs(os.path.join(tree, dir_of(j, groups)))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    join, open_, write, close = os.path.join, os.open, os.write, os.close
    for i in range(files):
        j = i * dirs // files
        fd = open_(join(tree, dir_of(j, groups), file_name(i)), flags, 0o644)
        try:
            write(fd, _FILLER[: file_size(i)])
        finally:
            close(fd)


def prepare_tree(work: str, files: int, dirs: int) -> tuple[str, str]:
    """The tree under ``work`` (reused if a kept one has the same shape); returns (path, how)."""
    tree = os.path.join(work, "tree")
    manifest = os.path.join(work, "tree.json")
    shape = {"files": files, "dirs": dirs, "layout": LAYOUT_VERSION}
    if os.path.isdir(tree):
        try:
            with open(manifest, encoding="utf-8") as f:
                if json.load(f) == shape:
                    return tree, "reused"
        except (OSError, ValueError):
            pass
        note(f"removing a tree of another shape at {tree}")
        shutil.rmtree(tree)
    note(f"generating {files:,} files in {dirs:,} directories under {tree}")
    seconds, _ = timed(lambda: generate_tree(tree, files, dirs))
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(shape, f)
    return tree, f"generated in {seconds:.1f} s"


def filesystem_of(path: str) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts), or "?"."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    except OSError:
        pass
    return kind


# --------------------------------------------------------------------------- assetd side


def quiet_logging() -> None:
    from assetd import log

    log.configure_logging("json", "warning", stream=sys.stderr)


def import_assetd() -> None:
    """Everything a scan process imports (the RSS baseline child does only this)."""
    import sqlalchemy  # noqa: F401

    import assetd.catalog.engine
    import assetd.catalog.roots
    import assetd.catalog.schema
    import assetd.config
    import assetd.reconcile  # noqa: F401


@dataclass
class Catalog:
    engine: Any
    sessions: Any
    specs: list[Any]

    def close(self) -> None:
        self.engine.dispose()


def open_catalog(url: str, tree: str) -> Catalog:
    """Open (creating the schema of) the catalog at ``url`` and register the bench root."""
    from assetd.catalog.engine import make_engine, session_factory
    from assetd.catalog.roots import register_roots
    from assetd.catalog.schema import Upgrade, ensure_schema
    from assetd.config import RootConfig

    engine = make_engine(url)
    ensure_schema(engine, Upgrade.CREATE)
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        specs = register_roots(
            session, HOST, [RootConfig(name=ROOT_NAME, path=tree, tags=(ROOT_TAG,))], ignore=()
        )
    return Catalog(engine, sessions, specs)


def sqlite_url(path: str) -> str:
    return f"sqlite:///{path}"


def scan(cat: Catalog) -> tuple[float, Any]:
    """One ``sync_cache_states_with_filesystem`` of the bench root: (seconds, result)."""
    from assetd.reconcile import sync_cache_states_with_filesystem

    with cat.sessions() as session:
        return timed(lambda: sync_cache_states_with_filesystem(session, cat.specs))


def check_scan(result: Any, files: int, *, first: bool, what: str) -> None:
    """Correctness, not timing: the scan saw exactly the generated files."""
    want = (files, 0) if first else (0, files)
    got = (result.new, result.unchanged)
    other = (result.missing, result.restored, result.changed, result.skipped)
    if got != want or any(other):
        raise SystemExit(f"{what}: unexpected {result.as_dict()} (wanted new, unchanged: {want})")


def assetd_walk_only(tree: str) -> int:
    from assetd.walk import list_files_recursively

    return sum(1 for _ in list_files_recursively(tree))


# --------------------------------------------------------------------------- raw baselines

Row = tuple[str, int, int, int, int]  # path, size, mtime_ns, device, inode


def raw_walk(top: str) -> list[Row]:
    """scandir + stat, entries sorted per directory (a directory sorts as name + "/", as in
    assetd), so rows come out in ascending path order."""
    out: list[Row] = []
    append = out.append

    def visit(directory: str, prefix: str) -> None:
        with os.scandir(directory) as it:
            entries = sorted(
                ((e.name + "/" if e.is_dir(follow_symlinks=False) else e.name), e) for e in it
            )
        for key, entry in entries:
            if key[-1] == "/":
                visit(entry.path, prefix + key)
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat()
                append((prefix + key, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))

    visit(top, top.rstrip("/") + "/")
    return out


@dataclass
class RawRows:
    assets: list[tuple[Any, ...]] = field(default_factory=list)
    cache_states: list[tuple[Any, ...]] = field(default_factory=list)
    infos: list[tuple[Any, ...]] = field(default_factory=list)
    tags: list[tuple[Any, ...]] = field(default_factory=list)
    info_tags: list[tuple[Any, ...]] = field(default_factory=list)


def build_rows(walked: list[Row], root_id: int) -> RawRows:
    """The rows a seed writes, ids from 1 (a fresh catalog), like assetd's bulk insert."""
    rows = RawRows(tags=[(ROOT_TAG,)])
    for n, (path, size, mtime_ns, device, inode) in enumerate(walked, 1):
        rows.assets.append((n, size))
        rows.cache_states.append((n, root_id, path, size, mtime_ns, device, inode))
        rows.infos.append((n, n, path.rpartition("/")[2]))
        rows.info_tags.append((n, ROOT_TAG, "automatic"))
    return rows


def raw_connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA foreign_keys = ON")
    return con


def raw_insert(con: sqlite3.Connection, rows: RawRows) -> None:
    """Plain executemany inserts, one transaction."""
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO assets (id, size_bytes) VALUES (?, ?)", rows.assets)
    con.executemany(
        "INSERT INTO asset_cache_states "
        "(asset_id, root_id, file_path, size_bytes, mtime_ns, device, inode) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows.cache_states,
    )
    con.executemany("INSERT INTO asset_infos (id, asset_id, name) VALUES (?, ?, ?)", rows.infos)
    con.executemany("INSERT INTO tags (name) VALUES (?)", rows.tags)
    con.executemany(
        "INSERT INTO asset_info_tags (asset_info_id, tag_name, origin) VALUES (?, ?, ?)",
        rows.info_tags,
    )
    con.execute("COMMIT")


def raw_rescan(tree: str, db: str, root_id: int) -> int:
    """The floor of a re-scan in Python: the scandir+stat walk, one sqlite3 SELECT of the root's
    rows in path order, and a merge of the two; returns how many files are unchanged."""
    walked = raw_walk(tree)
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT file_path, size_bytes, mtime_ns, is_missing FROM asset_cache_states "
            "WHERE root_id = ? ORDER BY file_path",
            (root_id,),
        ).fetchall()
    finally:
        con.close()
    unchanged = 0
    it = iter(rows)
    row = next(it, None)
    for path, size, mtime_ns, _, _ in walked:
        while row is not None and row[0] < path:
            row = next(it, None)
        if row is not None and row[0] == path:
            if row[1] == size and row[2] == mtime_ns and not row[3]:
                unchanged += 1
            row = next(it, None)
    return unchanged


def catalog_fingerprint(path: str) -> tuple[Any, ...]:
    """Counts and sums over what a seed writes, to compare the assetd and raw catalogs."""
    con = sqlite3.connect(path)
    try:
        return tuple(
            con.execute(sql).fetchone()
            for sql in (
                "SELECT count(*), sum(size_bytes) FROM assets",
                "SELECT count(*), sum(size_bytes), sum(mtime_ns % 1000003), "
                "sum(length(file_path)) FROM asset_cache_states",
                "SELECT count(*), sum(length(name)) FROM asset_infos",
                "SELECT count(*) FROM tags",
                "SELECT count(*) FROM asset_info_tags WHERE origin = 'automatic'",
            )
        )
    finally:
        con.close()


def run_find(tree: str) -> float:
    cmd = ["find", tree, "-type", "f", "-printf", "%s %T@ %p\\n"]
    seconds, _ = timed(lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True))
    return float(seconds)


def watchman_crawl(work: str, tree: str) -> tuple[float, float]:
    """Watchman's initial crawl of ``tree`` on a fresh isolated server: (seconds from ``watch``
    to a synced ``clock``, the server's CPU-seconds by then, start-up included)."""
    shutil.rmtree(work, ignore_errors=True)
    wm = Watchman(work)
    wm.start()
    try:
        seconds = wm.watch(tree)
        return seconds, wm.cpu_seconds()
    finally:
        wm.stop()
        shutil.rmtree(work, ignore_errors=True)


def process_scans(work: str, tree: str) -> tuple[float, float]:
    """Whole-process ``python -m assetd scan`` of ``tree`` into a fresh state directory, twice:
    (first, second) in seconds, start-up included, as a user runs it (bytecode cache on)."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = os.path.join(work, "assetd.toml")
    with open(config, "w", encoding="utf-8") as f:
        f.write(
            f'[daemon]\nstate_dir = "{os.path.join(work, "state")}"\n\n[hashing]\n'
            f'enabled = false\n\n[[roots]]\nname = "{ROOT_NAME}"\npath = "{tree}"\n'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    cmd = [sys.executable, "-m", "assetd", "--config", config, "scan"]
    out: list[float] = []
    for _ in range(2):
        os.sync()
        seconds, _ = timed(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True))
        out.append(float(seconds))
    shutil.rmtree(work, ignore_errors=True)
    return out[0], out[1]


def scandir_rs_walk(tree: str) -> tuple[float, float] | None:
    """``scandir_rs.Scandir`` (extended stat figures) over ``tree``, every entry taken:
    (seconds, CPU-seconds of this process, its threads included); None without the module."""
    try:
        mod: Any = importlib.import_module("scandir_rs")
    except ImportError:
        return None
    cpu = time.process_time()
    seconds, count = timed(
        lambda: sum(1 for _ in mod.Scandir(tree, return_type=mod.ReturnType.Ext))
    )
    used = time.process_time() - cpu
    note(f"scandir_rs: {count} entries")
    return float(seconds), used


# --------------------------------------------------------------------------- child processes


def vm_hwm_kib() -> int:
    """VmHWM of this process: the peak RSS of its own address space only (no inherited part)."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def child_main(mode: str, db: str, tree: str) -> int:
    """``--child`` mode: import (baseline), seed (first scan) or rescan, then print a JSON line."""
    import_assetd()
    out: dict[str, Any] = {"mode": mode}
    if mode != "import":
        quiet_logging()
        cat = open_catalog(sqlite_url(db), tree)
        seconds, result = scan(cat)
        cat.close()
        out.update(seconds=seconds, result=result.as_dict())
    out["vm_hwm_kib"] = vm_hwm_kib()
    print(json.dumps(out))
    return 0


def launcher_main(mode: str, db: str, tree: str) -> int:
    """``--launch`` mode: run one ``--child`` and report ``getrusage(RUSAGE_CHILDREN)``.

    Linux carries the parent's peak RSS into a child's ``ru_maxrss`` across fork (vfork) and
    exec, so the bench process (hundreds of MiB at 1M files) cannot measure its children
    itself: this small launcher (stdlib only) does, for exactly one child.
    """
    import resource

    cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--db", db, "--tree", tree]
    output = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    child = json.loads(output.strip().splitlines()[-1])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    child["children_maxrss_kib"] = usage.ru_maxrss
    child["launcher_vm_hwm_kib"] = vm_hwm_kib()
    print(json.dumps(child))
    return 0


def run_child(mode: str, db: str, tree: str) -> tuple[float, dict[str, Any]]:
    """One ``--child`` in a fresh interpreter, via a launcher; (its peak RSS in MiB, its JSON)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--launch", mode, "--db", db, "--tree", tree]
    output = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    out: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return out["children_maxrss_kib"] / 1024, out


# --------------------------------------------------------------------------- PostgreSQL


def pg_bench(url: str, tree: str, files: int) -> dict[str, float]:
    """First scan and two re-scans in a scratch database ``assetd_bench`` (created and dropped
    here, with AUTOCOMMIT, through the server ``url`` names)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    scratch = make_url(url).set(database=SCRATCH_PG_DB).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {SCRATCH_PG_DB} WITH (FORCE)"))

    figures: dict[str, float] = {}
    try:
        drop()
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {SCRATCH_PG_DB}"))
        # Baseline: raw psycopg COPY of the rows a seed writes, into the same tables of a
        # freshly migrated catalog, rows walked before the timer (pure insert time), one
        # transaction; then the same tables emptied for assetd's own first scan.
        cat = open_catalog(scratch, tree)
        try:
            walked = raw_walk(tree)
            rows = build_rows(walked, cat.specs[0].id)
            note("PostgreSQL: raw COPY baseline")
            os.sync()
            figures["copy"] = raw_copy_pg(scratch, rows)
            note("PostgreSQL: raw COPY baseline again, with the walk timed too")
            started = time.perf_counter()
            rows = build_rows(raw_walk(tree), cat.specs[0].id)
            raw_copy_pg(scratch, rows)
            figures["copy_walk"] = time.perf_counter() - started
            note("PostgreSQL: first scan")
            os.sync()
            figures["seed"], result = scan(cat)
            check_scan(result, files, first=True, what="PostgreSQL first scan")
            for n in (1, 2):
                note(f"PostgreSQL: re-scan {n}")
                os.sync()
                figures[f"rescan{n}"], result = scan(cat)
                check_scan(result, files, first=False, what=f"PostgreSQL re-scan {n}")
        finally:
            cat.close()
    finally:
        drop()
        admin.dispose()
    return figures


def raw_copy_pg(url: str, rows: RawRows) -> float:
    """Seconds for psycopg ``COPY`` of ``rows`` into the (emptied) seed tables, one
    transaction, committed. The tables are emptied (untimed) first."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conninfo = f"host={u.host} port={u.port or 5432} user={u.username} dbname={u.database}"
    with psycopg.connect(conninfo) as con:
        con.execute(
            "TRUNCATE asset_info_tags, tags, asset_infos, asset_cache_states, assets CASCADE"
        )
        con.commit()
        started = time.perf_counter()
        with con.cursor() as cur:
            for sql, data in (
                ("COPY assets (id, size_bytes) FROM STDIN", rows.assets),
                (
                    "COPY asset_cache_states (asset_id, root_id, file_path, size_bytes, "
                    "mtime_ns, device, inode) FROM STDIN",
                    rows.cache_states,
                ),
                ("COPY asset_infos (id, asset_id, name) FROM STDIN", rows.infos),
                ("COPY tags (name) FROM STDIN", rows.tags),
                (
                    "COPY asset_info_tags (asset_info_id, tag_name, origin) FROM STDIN",
                    rows.info_tags,
                ),
            ):
                with cur.copy(sql) as copy:
                    for row in data:
                        copy.write_row(row)
        con.commit()
        elapsed = time.perf_counter() - started
        con.execute(
            "TRUNCATE asset_info_tags, tags, asset_infos, asset_cache_states, assets CASCADE"
        )
        con.commit()
    return elapsed


# --------------------------------------------------------------------------- --readers

READERS = {
    "workers": "two worker processes (an idle core taken as given)",
    "in place": "each directory read by the walk itself (no idle core)",
    "threads": "two read-ahead threads (the walk of rules that do not pickle)",
}


def compare_readers(
    db: str, tree: str, rounds: int, files: int
) -> dict[str, list[tuple[float, float]]]:
    """The warm re-scan with each way of reading the walk's directories, interleaved round by
    round (the machine's load weighs on each alike), with ``find`` in each round:
    {mode: [(seconds, CPU-seconds), ...]}."""
    import assetd.walk as walk_mod
    import assetd.walk_procs

    cat = open_catalog(sqlite_url(db), tree)
    out: dict[str, list[tuple[float, float]]] = {}
    saved = walk_mod.PROCESSES, assetd.walk_procs.idle_cores
    try:
        scan(cat)  # warm
        for rnd in range(rounds):
            note(f"readers: round {rnd + 1} of {rounds}")
            for mode in READERS:
                walk_mod.PROCESSES = 0 if mode == "threads" else saved[0]
                idle = (lambda: 1) if mode == "workers" else (lambda: 0)
                setattr(walk_mod, "idle_cores", idle)  # noqa: B010  # walk's own name for it
                cpu = cpu_now()
                seconds, result = scan(cat)
                out.setdefault(mode, []).append((seconds, cpu_now() - cpu))
                check_scan(result, files, first=False, what=f"re-scan ({mode})")
            before = os.times()
            seconds = run_find(tree)
            after = os.times()
            find_cpu = after.children_user + after.children_system
            find_cpu -= before.children_user + before.children_system
            out.setdefault("find", []).append((seconds, find_cpu))
    finally:
        walk_mod.PROCESSES = saved[0]
        setattr(walk_mod, "idle_cores", saved[1])  # noqa: B010
        cat.close()
    return out


def readers_table(runs: dict[str, list[tuple[float, float]]]) -> str:
    import statistics

    find = statistics.median(s for s, _ in runs["find"])
    lines = [
        f"### Re-scan by way of reading directories (`--readers {len(runs['find'])}`: "
        f"interleaved rounds, load average {os.getloadavg()[0]:.2f} at the end)",
        "",
        "| reader | median s | best s | median / find's median | median CPU-s | every run (s) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode, title in (*READERS.items(), ("find", "`find -printf` (same rounds)")):
        walls = [s for s, _ in runs[mode]]
        med = statistics.median(walls)
        cpu = statistics.median(c for _, c in runs[mode])
        every = ", ".join(f"{s:.2f}" for s in walls)
        lines.append(
            f"| {title} | {med:.3f} | {min(walls):.3f} | {med / find:.2f} | {cpu:.3f} | {every} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- cProfile


def profile_scans(db: str, tree: str, top: int) -> list[tuple[str, str]]:
    """cProfile of a first scan and of a warm re-scan (after one unprofiled re-scan), on their
    own catalog; (title, pstats text) sorted by tottime, then by cumulative time."""
    import cProfile
    import io
    import pstats

    from assetd.reconcile import sync_cache_states_with_filesystem

    cat = open_catalog(sqlite_url(db), tree)
    sections: list[tuple[str, str]] = []
    try:
        for label in ("first scan", "re-scan (warm)"):
            if label != "first scan":
                scan(cat)
            note(f"profiling the {label}")
            prof = cProfile.Profile()
            with cat.sessions() as session:
                prof.enable()
                sync_cache_states_with_filesystem(session, cat.specs)
                prof.disable()
            for order in ("tottime", "cumulative"):
                stream = io.StringIO()
                stats = pstats.Stats(prof, stream=stream).strip_dirs().sort_stats(order)
                stats.print_stats(top)
                text = stream.getvalue().strip("\n")
                sections.append((f"cProfile, {label}, top {top} by {order}", text))
    finally:
        cat.close()
    return sections


# --------------------------------------------------------------------------- the run


@dataclass
class Figures:
    files: int = 0
    dirs: int = 0
    repeat: int = 1
    tree_how: str = ""
    tree_fs: str = ""
    # seconds of each timed run, one entry per round: see one_round for the keys
    runs: dict[str, list[float]] = field(default_factory=dict)
    rss: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    pg: dict[str, float] | None = None
    pg_url: str = ""
    catalogs_match: bool = True
    profiles: list[tuple[str, str]] = field(default_factory=list)
    readers: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    watchman: bool = True
    process: bool = True

    def record(self, key: str, seconds: float) -> None:
        self.runs.setdefault(key, []).append(seconds)

    def best(self, key: str) -> float:
        return min(self.runs[key])


def one_round(tree: str, db: dict[str, str], fig: Figures) -> None:
    """Every in-process timed run once, each on fresh catalogs (the ``db`` paths)."""
    files = fig.files
    # Baseline 1: raw inserts of rows walked before the timer (the walk also warms the caches).
    note("raw walk (untimed) for the insert-only baseline")
    walked = raw_walk(tree)
    if len(walked) != files:
        raise SystemExit(f"the tree holds {len(walked)} files, expected {files}")
    cat = open_catalog(sqlite_url(db["raw"]), tree)
    raw_root_id = cat.specs[0].id
    cat.close()
    rows = build_rows(walked, raw_root_id)
    del walked
    con = raw_connect(db["raw"])
    note("raw sqlite3 inserts")
    os.sync()  # no writeback of earlier work (the tree, a catalog) during a timed run
    started = time.perf_counter()
    raw_insert(con, rows)
    fig.record("raw_insert", time.perf_counter() - started)
    con.close()
    del rows

    # Baseline 2: the same, with the walk inside the timer.
    cat = open_catalog(sqlite_url(db["rawwalk"]), tree)
    root_id = cat.specs[0].id
    cat.close()
    con = raw_connect(db["rawwalk"])
    note("raw walk + sqlite3 inserts")
    os.sync()
    started = time.perf_counter()
    walked = raw_walk(tree)
    fig.record("raw_walk_part", time.perf_counter() - started)
    raw_insert(con, build_rows(walked, root_id))
    fig.record("raw_walk_insert", time.perf_counter() - started)
    con.close()
    del walked
    gc.collect()

    note("assetd walk only (list_files_recursively)")
    os.sync()
    seconds, count = timed(lambda: assetd_walk_only(tree))
    fig.record("assetd_walk", seconds)
    if count != files:
        raise SystemExit(f"list_files_recursively yielded {count} files, expected {files}")

    # 1) first scan, 2) re-scans: in-process, walk start to commit.
    cat = open_catalog(sqlite_url(db["assetd"]), tree)
    try:
        note("assetd first scan")
        os.sync()
        cpu = cpu_now()
        seconds, result = scan(cat)
        fig.record("seed_cpu", cpu_now() - cpu)
        fig.record("seed", seconds)
        check_scan(result, files, first=True, what="first scan")
        for n in (1, 2):
            note(f"assetd re-scan {n}")
            os.sync()
            cpu = cpu_now()
            seconds, result = scan(cat)
            fig.record(f"rescan{n}_cpu", cpu_now() - cpu)  # every thread's, its workers'
            check_scan(result, files, first=False, what=f"re-scan {n}")
            fig.record(f"rescan{n}", seconds)
    finally:
        cat.close()
    prints = [catalog_fingerprint(db[k]) for k in ("assetd", "raw", "rawwalk")]
    if not prints[0] == prints[1] == prints[2]:
        fig.catalogs_match = False
        note(f"WARNING: the catalogs differ: {prints}")

    note("find -printf, twice")
    os.sync()
    for n in (1, 2):
        before = os.times()
        fig.record(f"find{n}", run_find(tree))
        after = os.times()
        fig.record(
            f"find{n}_cpu",
            after.children_user
            + after.children_system
            - before.children_user
            - before.children_system,
        )

    note("raw re-scan floor (walk + SELECT + merge), twice")
    for n in (1, 2):
        os.sync()
        cpu = time.process_time()
        seconds, count = timed(lambda: raw_rescan(tree, db["raw"], raw_root_id))
        fig.record(f"raw_rescan{n}_cpu", time.process_time() - cpu)
        fig.record(f"raw_rescan{n}", seconds)
        if count != files:
            raise SystemExit(f"raw re-scan found {count} unchanged files, expected {files}")

    if fig.watchman:
        note("Watchman: initial crawl on a fresh server")
        os.sync()
        seconds, cpu = watchman_crawl(os.path.join(os.path.dirname(db["raw"]), "watchman"), tree)
        fig.record("watchman_crawl", seconds)
        fig.record("watchman_crawl_cpu", cpu)
    if fig.process:
        note("python -m assetd scan, first and second, whole process")
        first, second = process_scans(os.path.join(os.path.dirname(db["raw"]), "proc"), tree)
        fig.record("proc_scan1", first)
        fig.record("proc_scan2", second)
    srs = scandir_rs_walk(tree)
    if srs is not None:
        fig.record("scandir_rs", srs[0])
        fig.record("scandir_rs_cpu", srs[1])


def measure(args: argparse.Namespace, work: str, fig: Figures) -> None:
    files, dirs = fig.files, fig.dirs
    tree, fig.tree_how = prepare_tree(work, files, dirs)
    fig.tree_fs = filesystem_of(tree)
    dbdir = os.path.join(work, "db")  # the catalogs lie outside the tree
    shutil.rmtree(dbdir, ignore_errors=True)
    os.makedirs(dbdir)
    import_assetd()
    quiet_logging()

    db: dict[str, str] = {}
    for rnd in range(1, fig.repeat + 1):
        for path in db.values():  # the previous round's catalogs
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path + suffix)
        db = {k: os.path.join(dbdir, f"{k}-{rnd}.db") for k in ("assetd", "raw", "rawwalk")}
        note(f"round {rnd} of {fig.repeat}")
        one_round(tree, db, fig)

    # 3) peak RSS, each in a fresh interpreter.
    child_db = os.path.join(dbdir, "child.db")
    for mode, path in (("import", child_db), ("seed", child_db), ("rescan", db["assetd"])):
        note(f"child: {mode}")
        os.sync()
        fig.rss[mode] = run_child(mode, path, tree)
        if mode != "import":
            got = fig.rss[mode][1]["result"]
            want_new = files if mode == "seed" else 0
            if got["new"] != want_new or got["unchanged"] != files - want_new:
                raise SystemExit(f"child {mode}: unexpected result {got}")

    if args.pg:
        fig.pg_url = args.pg
        fig.pg = pg_bench(args.pg, tree, files)

    if args.readers:
        fig.readers = compare_readers(db["assetd"], tree, args.readers, files)

    if args.profile:
        fig.profiles = profile_scans(os.path.join(dbdir, "profile.db"), tree, args.profile)


def crawl_rows(fig: Figures, add: Callable[[str], None]) -> None:
    """The crawl to "fully known" beside the first scan: Watchman's, and whole-process scans."""
    if not (fig.watchman or fig.process):
        return
    add("| crawl to a complete view, same run | seconds | every run (s) |")
    add("| --- | ---: | --- |")
    for key, title in (
        ("watchman_crawl", "Watchman 4.9: `watch` + synced `clock` (fresh server)"),
        ("watchman_crawl_cpu", "(Watchman's CPU-seconds by then, start-up included)"),
        ("seed", "assetd first scan, in-process (as above)"),
        ("rescan2", "assetd second scan, in-process (the warm re-scan below)"),
        ("proc_scan1", "`python -m assetd scan`, first (whole process, fresh state)"),
        ("proc_scan2", "`python -m assetd scan`, second (whole process)"),
    ):
        if key in fig.runs:
            runs = ", ".join(f"{v:.2f}" for v in fig.runs[key])
            add(f"| {title} | {fig.best(key):.2f} | {runs} |")
    add("")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(fig: Figures, command: str) -> str:
    import sqlalchemy

    n = fig.files
    lines: list[str] = []
    add = lines.append
    add("## assetd scan benchmark")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(
        f"{platform.platform()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}. "
        f"Tree: {n:,} files (1-97 bytes) in {fig.dirs:,} directories on {fig.tree_fs} "
        f"({fig.tree_how}); page cache warm for every run, `sync` before each timed one. "
        f"Load average (1 min) {fig.load_before[0]:.2f} at the start, "
        f"{fig.load_after[0]:.2f} at the end."
    )
    add("")
    rounds = fig.repeat
    best = fig.best

    def row(title: str, key: str, ratio: str) -> None:
        runs = ", ".join(f"{v:.2f}" for v in fig.runs[key])
        secs = best(key)
        add(f"| {title} | {secs:.2f} | {rate(n, secs):,.0f} | {ratio} | {runs} |")

    seed = best("seed")
    add("### 1. First scan (seed), SQLite, in-process, walk start to commit")
    add("")
    add(
        f"Best of {rounds} round(s), each on fresh catalogs; ratios from the best times."
        if rounds > 1
        else "One round: each figure is a single run."
    )
    add("")
    add("| run | seconds | files/s | assetd rate / this rate | every run (s) |")
    add("| --- | ---: | ---: | ---: | --- |")
    row("assetd `sync_cache_states_with_filesystem`", "seed", "-")
    r1 = best("raw_insert") / seed
    row(
        "raw sqlite3 executemany, same rows and tables, one transaction (rows precomputed)",
        "raw_insert",
        f"**{r1:.2f}** (target >= 0.5: {_verdict(r1 >= 0.5)})",
    )
    r2 = best("raw_walk_insert") / seed
    row(
        "raw scandir+stat walk + the same inserts, timed together",
        "raw_walk_insert",
        f"**{r2:.2f}**",
    )
    row("(of which the raw walk)", "raw_walk_part", f"{best('raw_walk_part') / seed:.2f}")
    row(
        "assetd `list_files_recursively` alone (no catalog)",
        "assetd_walk",
        f"{best('assetd_walk') / seed:.2f}",
    )
    add("")
    match = "identical" if fig.catalogs_match else "DIFFERENT (see stderr)"
    add(f"The assetd and raw catalogs' row counts and sums: {match}.")
    add("")
    floor = seed / best("raw_walk_insert")
    add(
        f"First scan / raw walk + inserts (same run): **{floor:.2f}x** (target <= 1.3: "
        f"{_verdict(floor <= 1.3)}). CPU-seconds of the first scan (this process, every "
        f"thread): {best('seed_cpu'):.2f}."
    )
    add("")
    crawl_rows(fig, add)
    add("### 2. Re-scan of the unchanged tree (warm: the second of two in a round)")
    add("")
    find_warm = best("find2")
    ratio = best("rescan2") / find_warm
    add("| run | seconds | files/s | time / find's | every run (s) |")
    add("| --- | ---: | ---: | ---: | --- |")
    row(
        "assetd re-scan (warm)",
        "rescan2",
        f"**{ratio:.2f}** (target <= 2.0: {_verdict(ratio <= 2.0)})",
    )
    row("assetd re-scan (first)", "rescan1", f"{best('rescan1') / find_warm:.2f}")
    row("`find TREE -type f -printf '%s %T@ %p\\n' > /dev/null` (warm)", "find2", "1.00")
    row("find (first)", "find1", f"{best('find1') / find_warm:.2f}")
    row(
        "raw Python floor: scandir+stat walk + one sqlite3 SELECT + merge (warm)",
        "raw_rescan2",
        f"{best('raw_rescan2') / find_warm:.2f}",
    )
    add("")
    find_cpu = best("find2_cpu")
    add(
        f"CPU-seconds of the same warm runs (best; this process's every thread, "
        f"`time.process_time`, plus its walk's worker processes, against find's "
        f"utime+stime): assetd re-scan "
        f"{best('rescan2_cpu'):.2f} (**{best('rescan2_cpu') / find_cpu:.2f}x** find's), raw "
        f"Python floor {best('raw_rescan2_cpu'):.2f} "
        f"({best('raw_rescan2_cpu') / find_cpu:.2f}x), find {find_cpu:.2f}. On a loaded "
        f"machine the wall-clock times above wait for the cores; these do not."
    )
    add("")
    if fig.watchman:
        crawl = best("watchman_crawl")
        second = best("rescan2") / crawl
        add(
            f"Second scan (the warm re-scan) / Watchman's initial crawl of the same tree (same "
            f"run): {best('rescan2'):.2f} / {crawl:.2f} s = **{second:.2f}** (target <= 1.0: "
            f"{_verdict(second <= 1.0)})."
        )
        add("")
    if "scandir_rs" in fig.runs:
        add(
            f"`scandir_rs.Scandir` (Rust, extended stat figures, unsorted; not an assetd "
            f"dependency) over the same tree: {best('scandir_rs'):.2f} s, "
            f"{best('scandir_rs_cpu'):.2f} CPU-s ({best('scandir_rs') / find_warm:.2f}x find's "
            f"time); runs: {', '.join(f'{v:.2f}' for v in fig.runs['scandir_rs'])}."
        )
        add("")
    add("### 3. Peak RSS of a child process, nothing subtracted")
    add("")
    add(
        "`getrusage(RUSAGE_CHILDREN).ru_maxrss` read by a small launcher that ran only that "
        "child; VmHWM (the child's own /proc status, at its end) as a cross-check."
    )
    add("")
    add("| child process | peak RSS MiB | MB | child's own VmHWM MiB | scan seconds in the child |")
    add("| --- | ---: | ---: | ---: | ---: |")
    titles = {
        "import": "imports assetd + SQLAlchemy only (baseline)",
        "seed": "first scan (fresh catalog)",
        "rescan": "re-scan (unchanged tree)",
    }
    for mode, title in titles.items():
        mib, out = fig.rss[mode]
        secs = f"{out['seconds']:.2f}" if "seconds" in out else "-"
        hwm = out["vm_hwm_kib"] / 1024
        add(f"| {title} | {mib:.1f} | {mib * 1.048576:.1f} | {hwm:.1f} | {secs} |")
    worst = max(fig.rss["seed"][0], fig.rss["rescan"][0]) * 1.048576
    add("")
    add(
        f"Peak RSS at {n:,} files: {worst:.0f} MB "
        f"(target <= 200 MB at 1,000,000 files{'' if n >= 1_000_000 else '; this run is smaller'}"
        f"{': ' + _verdict(worst <= 200) if n >= 1_000_000 else ''})."
    )
    if fig.pg is not None:
        from sqlalchemy.engine import make_url

        pg = fig.pg
        add("")
        add(
            f"### PostgreSQL ({make_url(fig.pg_url).render_as_string(hide_password=True)}, "
            f"scratch database {SCRATCH_PG_DB})"
        )
        add("")
        add("| run | seconds | files/s |")
        add("| --- | ---: | ---: |")
        add(f"| first scan | {pg['seed']:.2f} | {rate(n, pg['seed']):,.0f} |")
        add(f"| re-scan (first) | {pg['rescan1']:.2f} | {rate(n, pg['rescan1']):,.0f} |")
        add(f"| re-scan (warm) | {pg['rescan2']:.2f} | {rate(n, pg['rescan2']):,.0f} |")
        add(
            f"| raw psycopg COPY of the seed rows (walked before) | {pg['copy']:.2f} | "
            f"{rate(n, pg['copy']):,.0f} |"
        )
        add(f"| raw walk + COPY | {pg['copy_walk']:.2f} | {rate(n, pg['copy_walk']):,.0f} |")
        sqlite_seed = fig.best("seed")
        add("")
        add(
            f"First scan on PostgreSQL: {pg['copy'] / pg['seed']:.2f}x the speed of a raw COPY "
            f"(goal >= 0.5x), {pg['copy_walk'] / pg['seed']:.2f}x walk + COPY; "
            f"{pg['seed'] / sqlite_seed:.2f}x the SQLite first scan's time of this run "
            f"({sqlite_seed:.2f} s; goal <= 1.5x)."
        )
    if fig.readers:
        add("")
        add(readers_table(fig.readers))
    for title, text in fig.profiles:
        add("")
        add(f"### {title}")
        add("")
        add("```")
        add(text)
        add("```")
    return "\n".join(lines)


# --------------------------------------------------------------------------- --birth


def _walk_with(tree: str, extra: Callable[[str], object] | None) -> int:
    from assetd.fsutil import os_path_of
    from assetd.walk import list_files_recursively

    n = 0
    for fs in list_files_recursively(tree):
        if extra is not None:
            extra(os_path_of(fs.path, fs.raw))
        n += 1
    return n


def _seed_once(db: str, tree: str, with_birth: bool) -> float:
    """A first scan into a fresh catalog; ``with_birth=False`` stubs the statx out."""
    import assetd.reconcile_apply as apply

    stub = mock.patch.object(apply, "birth_ns", lambda path, follow=True: None)
    with stub if not with_birth else contextlib.nullcontext():
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(db + suffix)
        cat = open_catalog(sqlite_url(db), tree)
        try:
            os.sync()
            seconds, result = scan(cat)
        finally:
            cat.close()
    if result.new != cat_files(tree):
        raise SystemExit(f"first scan: unexpected {result.as_dict()}")
    return seconds


def cat_files(tree: str) -> int:
    return _walk_with(tree, None)


def birth_bench(work: str, fig: Figures, command: str) -> str:
    """Where to read the birth time: a ``statx`` per file on every walk, or only where a row is
    written (seeded, changed). Figures: the walk alone, the walk plus one ``statx`` (ctypes) per
    file, the walk plus one ``os.stat`` per file (the same extra syscall from the stdlib), and a
    first scan with and without its ``statx`` per seeded file; best of ``--repeat`` (min 3)."""
    from assetd import statx

    tree, how = prepare_tree(work, fig.files, fig.dirs)
    import_assetd()
    quiet_logging()
    n = _walk_with(tree, None)  # warms the page cache
    runs: dict[str, list[float]] = {}
    rounds = max(3, fig.repeat)
    for _ in range(rounds):
        for key, extra in (("walk", None), ("statx", statx.birth_ns), ("stat", os.stat)):
            runs.setdefault(key, []).append(timed(lambda e=extra: _walk_with(tree, e))[0])  # type: ignore[misc]
        db = os.path.join(work, "birth.db")
        runs.setdefault("seed_statx", []).append(_seed_once(db, tree, True))
        runs.setdefault("seed_plain", []).append(_seed_once(db, tree, False))
    best = {k: min(v) for k, v in runs.items()}
    us = {k: v / n * 1e6 for k, v in best.items()}
    load = os.getloadavg()[0]
    lines = [
        "## birth time: statx cost (scan_bench --birth)",
        "",
        "```",
        command,
        "```",
        "",
        f"{n:,} files on {filesystem_of(tree)} ({how}); best of {rounds}; load average "
        f"(1 min) {load:.2f}. Per file:",
        "",
        "| run | total s | per file | vs walk alone |",
        "|---|---|---|---|",
    ]
    for key, title in (
        ("walk", "walk alone (list_files_recursively)"),
        ("statx", "walk + statx birth time per file"),
        ("stat", "walk + os.stat per file"),
        ("seed_plain", "first scan, statx stubbed out"),
        ("seed_statx", "first scan, statx per seeded file"),
    ):
        lines.append(
            f"| {title} | {best[key]:.3f} | {us[key]:.2f} us | {best[key] / best['walk']:.2f}x |"
        )
    lines += [
        "",
        f"statx per file costs {us['statx'] - us['walk']:.2f} us over the walk "
        f"({best['statx'] / best['walk'] - 1:+.0%} on a re-scan's walk; os.stat: "
        f"{us['stat'] - us['walk']:.2f} us); in a first scan it costs "
        f"{best['seed_statx'] / best['seed_plain'] - 1:+.1%}.",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark assetd's first scan, re-scan and peak RSS against baselines "
        "measured in the same run.",
    )
    p.add_argument("--files", type=int, default=100_000, help="files in the tree (100,000)")
    p.add_argument("--dirs", type=int, help="leaf directories (default: files / 100)")
    p.add_argument(
        "--dir",
        help="work directory for the tree and the catalogs (default: a fresh one under /tmp); "
        "a kept tree of the same shape there is reused",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="K",
        help="rounds of the in-process timed runs; the best of each is reported (1)",
    )
    p.add_argument("--pg", metavar="URL", help="also scan into PostgreSQL (scratch database)")
    p.add_argument("--no-watchman", action="store_true", help="leave Watchman's crawl out")
    p.add_argument(
        "--readers",
        type=int,
        metavar="K",
        default=0,
        help="also K interleaved rounds of the warm re-scan read by worker processes, in "
        "place, and by threads, with find in each round",
    )
    p.add_argument("--no-process", action="store_true", help="leave the whole-process scans out")
    p.add_argument(
        "--birth",
        action="store_true",
        help="only the statx figure: walk vs walk + statx per file, first scan with and "
        "without its statx (best of max(3, --repeat))",
    )
    p.add_argument(
        "--profile", type=int, metavar="N", default=0, help="print cProfile top N of the scans"
    )
    modes = ("import", "seed", "rescan")
    p.add_argument("--child", choices=modes, help=argparse.SUPPRESS)
    p.add_argument("--launch", choices=modes, help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child is None and args.launch is None:
        if args.files < 1:
            p.error("--files must be at least 1")
        if args.repeat < 1:
            p.error("--repeat must be at least 1")
        if args.dirs is not None and not 1 <= args.dirs <= args.files:
            p.error("--dirs must be between 1 and --files")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return child_main(args.child, args.db, args.tree)
    if args.launch is not None:
        return launcher_main(args.launch, args.db, args.tree)
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    fig = Figures(files=args.files, dirs=args.dirs or max(1, args.files // 100), repeat=args.repeat)
    fig.watchman, fig.process = not args.no_watchman, not args.no_process
    fig.load_before = os.getloadavg()  # was never set: every report said 0.00 at the start
    if args.dir:
        work = os.path.abspath(args.dir)
        made = not os.path.exists(work)
        os.makedirs(work, exist_ok=True)
    else:
        work, made = tempfile.mkdtemp(prefix="assetd-bench-", dir="/tmp"), True
    try:
        if args.birth:
            print(birth_bench(work, fig, command), flush=True)
            return 0
        fig.load_before = os.getloadavg()
        measure(args, work, fig)
        fig.load_after = os.getloadavg()
        print(report(fig, command), flush=True)
    finally:
        if args.keep:
            note(f"kept {work}")
        elif made:
            note(f"removing {work} (minutes at 1,000,000 files)")
            shutil.rmtree(work, ignore_errors=True)
        else:
            for name in ("tree", "db"):
                shutil.rmtree(os.path.join(work, name), ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(work, "tree.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
