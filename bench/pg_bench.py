"""PostgreSQL against SQLite, side by side in one run (issue 16), with where the time goes.

On one generated tree of small files (``scan_bench``'s tree):

1. First scan (``sync_cache_states_with_filesystem``, in-process, walk start to commit) into a
   fresh SQLite catalog and into a fresh PostgreSQL scratch database; baseline: a raw psycopg
   ``COPY`` of the same rows into the same tables (``scan_bench.raw_copy_pg``, rows walked
   before the timer). ``--repeat`` rounds, each on fresh catalogs (SQLite, the COPY, then
   PostgreSQL, back to back), each round's ratios printed; the goals are judged on the medians.
   Goals: PostgreSQL >= 0.5x the COPY's speed, <= 1.5x SQLite's time. Each first scan's
   CPU-seconds are printed too (this process's, every thread; on PostgreSQL plus those of the
   local server's backends serving the scratch database, from /proc), which a loaded machine
   inflates less than wall time.
2. Re-scan of the unchanged tree on both (the second of two: warm).
3. A deletion burst: ``--delete`` files (100,000: all) removed from the disk, then one batch of
   their paths applied by the live worker (``Worker.apply(Batch(gone=...))``: the daemon's
   ``bulk_update_is_missing`` path) to each catalog, timed; ``--repeat`` runs, each after the
   rows are put back live by a plain UPDATE; each run, the best and the median are reported.
   Goal: PostgreSQL <= 1.5x (median).

Where the time goes: every statement SQLAlchemy sends is timed client-side (cursor events;
``COPY`` through a wrapped ``sqlutil._copy_rows``, commits through the dialect's
``do_commit``), per statement shape; the rest of a run is Python (walk, stat, diff, rows).
With ``--explain``, an untimed pass on a second scratch database runs ``EXPLAIN (ANALYZE,
BUFFERS)`` of the first statement of each shape (inside a savepoint rolled back, just before
the statement itself runs), and of the re-scan's page query.

No assertions on timing; the script checks only that each run catalogued what it should.

    python bench/pg_bench.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from scan_bench import (
    Catalog,
    build_rows,
    check_scan,
    generate_tree,
    note,
    open_catalog,
    quiet_logging,
    raw_copy_pg,
    raw_walk,
    scan,
    sqlite_url,
)

SCRATCH = f"assetd_pgbench_{os.getpid()}"


# --------------------------------------------------------------------------- statement timing


@dataclass
class Shape:
    count: int = 0
    seconds: float = 0.0


@dataclass
class StatementLog:
    """Client-side seconds per statement shape while ``active``; EXPLAIN hook optional."""

    shapes: dict[str, Shape] = field(default_factory=dict)
    active: bool = False
    explain: bool = False
    plans: dict[str, str] = field(default_factory=dict)
    _started: dict[int, list[float]] = field(default_factory=dict)  # per thread
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._started.setdefault(threading.get_ident(), []).append(time.perf_counter())

    def since_start(self) -> float:
        return time.perf_counter() - self._started[threading.get_ident()].pop()

    def add(self, key: str, seconds: float) -> None:
        """Statements from several threads (the reconcile's writes behind the walk) add up."""
        if self.active:
            with self._lock:
                s = self.shapes.setdefault(key, Shape())
                s.count += 1
                s.seconds += seconds

    def take(self) -> dict[str, Shape]:
        out, self.shapes = self.shapes, {}
        return out


def shape_of(statement: str) -> str:
    text = " ".join(statement.split())
    return text if len(text) <= 110 else text[:107] + "..."


def instrument(engine: Any, log: StatementLog) -> None:
    """Time every statement, COPY and commit of ``engine`` into ``log``."""
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        if log.explain and engine.dialect.name == "postgresql":
            _explain(conn, statement, params[0] if many and params else params, log)
        log.start()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        seconds = log.since_start()
        log.add(("executemany: " if many else "") + shape_of(statement), seconds)

    do_commit = engine.dialect.do_commit

    def timed_commit(dbapi_conn: Any) -> None:
        started = time.perf_counter()
        do_commit(dbapi_conn)
        log.add("COMMIT", time.perf_counter() - started)

    engine.dialect.do_commit = timed_commit


def _explain(conn: Any, statement: str, params: Any, log: StatementLog) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the first statement of its shape, in a savepoint rolled
    back, on the statement's own connection and transaction, just before it runs."""
    key = shape_of(statement)
    head = statement.lstrip().split(None, 1)[0].upper()
    if key in log.plans or head not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
        return
    raw = conn.connection.driver_connection
    raw.execute("SAVEPOINT bench_explain")
    try:
        rows = raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params or None).fetchall()
        log.plans[key] = plan_text(rows)
    finally:
        raw.execute("ROLLBACK TO SAVEPOINT bench_explain")


def plan_text(rows: list[Any]) -> str:
    """An EXPLAIN's lines, each cut to 160 characters (a 10,000-path array is a literal)."""
    return "\n".join(r[0] if len(r[0]) <= 160 else r[0][:157] + "..." for r in rows)


@contextmanager
def copy_timed(log: StatementLog) -> Iterator[None]:
    """Time ``sqlutil._copy_rows`` (COPY goes to the driver's cursor, past the events)."""
    from assetd.catalog import sqlutil

    original = sqlutil._copy_rows

    def timed_copy(session: Any, table: Any, columns: Any, rows: Any) -> int:
        started = time.perf_counter()
        try:
            return original(session, table, columns, rows)
        finally:
            log.add(f"COPY {table.name} FROM STDIN", time.perf_counter() - started)

    sqlutil._copy_rows = timed_copy
    try:
        yield
    finally:
        sqlutil._copy_rows = original


@dataclass
class Run:
    seconds: float
    shapes: dict[str, Shape]
    cpu: float = 0.0  # CPU-seconds of this process (every thread)
    server_cpu: float = 0.0  # of the PostgreSQL backends serving the run's database


def backend_cpu(database: str | None) -> float:
    """CPU-seconds so far of the local PostgreSQL backends connected to ``database`` (their
    process title names it), from /proc; 0 for SQLite or a server elsewhere."""
    if not database:
        return 0.0
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().split(b"\0")[0].decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def logged(
    log: StatementLog, fn: Callable[[], Any], database: str | None = None
) -> tuple[Run, Any]:
    log.take()
    log.active = True
    started, cpu, server = time.perf_counter(), time.process_time(), backend_cpu(database)
    try:
        out = fn()
    finally:
        log.active = False
    seconds = time.perf_counter() - started
    cpu, server = time.process_time() - cpu, backend_cpu(database) - server
    return Run(seconds, log.take(), cpu, server), out


# --------------------------------------------------------------------------- the runs


@dataclass
class Engine:
    name: str
    cat: Catalog
    log: StatementLog
    runs: dict[str, Run] = field(default_factory=dict)
    bursts: list[Run] = field(default_factory=list)  # every burst run, in order


def open_logged(name: str, url: str, tree: str) -> Engine:
    log = StatementLog()
    cat = open_catalog(url, tree)
    instrument(cat.engine, log)
    return Engine(name, cat, log)


def first_scan(e: Engine, files: int, label: str) -> Run:
    note(f"{e.name}: first scan ({label})")
    os.sync()
    database = e.cat.engine.url.database if e.cat.engine.dialect.name == "postgresql" else None
    run, result = logged(e.log, lambda: scan(e.cat)[1], database)
    check_scan(result, files, first=True, what=f"{e.name} first scan")
    return run


@dataclass
class Round:
    """One round of first scans on fresh catalogs: SQLite, the raw COPY, PostgreSQL."""

    lite: Run
    pg: Run
    copy: float


def seed_round(
    stack: ExitStack, pg_url: str, work: str, tree: str, walked: list[Any], k: int, files: int
) -> tuple[Round, Engine, Engine]:
    """Round ``k``: fresh catalogs (closed, dropped with ``stack``), the three first scans back
    to back; the catalogs are returned for the re-scans and bursts of the last round."""
    lite = open_logged("SQLite", sqlite_url(os.path.join(work, f"catalog-{k}.db")), tree)
    stack.callback(lite.cat.close)
    url = stack.enter_context(scratch_db(pg_url, f"{SCRATCH}_{k}"))
    pg = open_logged("PostgreSQL", url, tree)
    stack.callback(pg.cat.close)
    stack.enter_context(copy_timed(lite.log))
    stack.enter_context(copy_timed(pg.log))
    label = f"round {k}"
    lite_run = first_scan(lite, files, label)
    note(f"PostgreSQL: raw COPY baseline ({label})")
    os.sync()
    copy = raw_copy_pg(url, build_rows(walked, pg.cat.specs[0].id))
    pg_run = first_scan(pg, files, label)
    return Round(lite_run, pg_run, copy), lite, pg


def median_round(rounds: list[Round]) -> Round:
    """The round whose PostgreSQL/SQLite ratio is the median (the lower middle of an even
    count): its breakdowns are the ones printed."""
    ordered = sorted(rounds, key=lambda r: r.pg.seconds / r.lite.seconds)
    return ordered[(len(ordered) - 1) // 2]


def rescans(e: Engine, files: int) -> None:
    for n in (1, 2):
        note(f"{e.name}: re-scan {n}")
        os.sync()
        e.runs[f"rescan{n}"], result = logged(e.log, lambda: scan(e.cat)[1])
        check_scan(result, files, first=False, what=f"{e.name} re-scan {n}")


def burst(e: Engine, gone: list[str], runs: int) -> None:
    """The live worker applying one batch of ``gone`` (deleted) paths, ``runs`` times; the
    rows are put back live (plain UPDATE, untimed) before each run."""
    from sqlalchemy import text

    from assetd.live.changes import Batch
    from assetd.live.worker import Worker

    worker = Worker(e.cat.sessions, e.cat.specs)
    batch = Batch(gone=frozenset(gone), size=len(gone))
    for n in range(1, runs + 1):
        with e.cat.engine.begin() as conn:
            conn.execute(
                text("UPDATE asset_cache_states SET is_missing = false, missing_since = NULL")
            )
        if e.cat.engine.dialect.name == "postgresql":
            with e.cat.engine.connect() as conn:  # what autovacuum would do between bursts
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE asset_cache_states"
                )
        note(f"{e.name}: burst of {len(gone):,} deletions, run {n}")
        os.sync()
        run, result = logged(e.log, lambda: worker.apply(batch))
        if result.missing != len(gone):
            raise SystemExit(f"{e.name} burst: {result.missing} marked missing, not {len(gone)}")
        e.bursts.append(run)
    e.runs["burst"] = min(e.bursts, key=lambda r: r.seconds)


def explain_scan(scratch: str, tree: str, files: int) -> Engine:
    """Untimed, on its own catalog: a first scan with each statement shape's first instance
    EXPLAINed (ANALYZE, BUFFERS), then the re-scan's page query; the catalog stays open for
    :func:`explain_burst`."""
    from assetd.reconcile import PAGE
    from assetd.reconcile_pages import _ROWS_SQL  # the re-scan's page query

    e = open_logged("explain", scratch, tree)
    e.log.explain = True
    note("PostgreSQL: EXPLAIN pass (first scan)")
    result = scan(e.cat)[1]
    check_scan(result, files, first=True, what="EXPLAIN pass first scan")
    e.log.explain = False
    seed_server_side(e)
    root = e.cat.specs[0]
    page = _ROWS_SQL.format(p="%s", page=PAGE)
    with e.cat.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        rows = raw.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + page, (root.id, root.path + "/", root.path + "0")
        ).fetchall()
        e.log.plans["re-scan page: " + shape_of(page)] = plan_text(rows)
        conn.rollback()
    return e


SEED_TABLES = ("assets", "asset_cache_states", "asset_infos", "asset_info_tags")


def seed_server_side(e: Engine) -> None:
    """The server's side of the seed, table by table: the first scan's rows copied aside, the
    tables emptied, and ``EXPLAIN ANALYZE INSERT ... SELECT`` of those rows back, in one
    transaction rolled back. COPY cannot be EXPLAINed; this shows what each row costs the
    server once it arrives (heap and index inserts, then each foreign key's trigger)."""
    with e.cat.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for table in SEED_TABLES:
            raw.execute(f"CREATE TEMP TABLE aside_{table} AS SELECT * FROM {table}")
        raw.execute("TRUNCATE " + ", ".join(reversed(SEED_TABLES)) + " CASCADE")
        for table in SEED_TABLES:
            sql = f"INSERT INTO {table} SELECT * FROM aside_{table}"
            rows = raw.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()
            e.log.plans[f"server side of the seed: {sql}"] = plan_text(rows)
        conn.rollback()


def explain_burst(e: Engine, gone: list[str]) -> dict[str, str]:
    """Untimed: the burst on the EXPLAIN pass's catalog, statements EXPLAINed as above."""
    try:
        e.log.explain = True
        burst(e, gone, 1)
        return e.log.plans
    finally:
        e.cat.close()


# --------------------------------------------------------------------------- PostgreSQL admin


@contextmanager
def scratch_db(url: str, name: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(url, isolation_level="AUTOCOMMIT")

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    try:
        drop()
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        drop()
        admin.dispose()


# --------------------------------------------------------------------------- report


def breakdown(run: Run, add: Callable[[str], None]) -> None:
    total = sum(s.seconds for s in run.shapes.values())
    add("| statement (client-side) | calls | seconds | share |")
    add("| --- | ---: | ---: | ---: |")
    for key, s in sorted(run.shapes.items(), key=lambda kv: -kv[1].seconds):
        if s.seconds < 0.005 * run.seconds:
            continue
        share = s.seconds / run.seconds * 100
        add(f"| `{key.replace('|', '/')}` | {s.count} | {s.seconds:.2f} | {share:.0f}% |")
    rest = run.seconds - total
    add(
        f"| the run minus the statements (Python: walk, stat, diff, rows; small statements; "
        f"the re-scan's page reads, which go to the driver's cursor; on PostgreSQL the "
        f"reconcile's writes run behind the walk, in other threads, so there the statements "
        f"overlap the walk and this is not its share) | | {rest:.2f} | "
        f"{rest / run.seconds * 100:.0f}% |"
    )
    add(f"| **run** | | **{run.seconds:.2f}** | |")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def seed_table(rounds: list[Round], add: Callable[[str], None]) -> tuple[float, float]:
    """Each round's first scans and ratios, then the medians; returns the median ratios
    (PostgreSQL / SQLite time, COPY's time / PostgreSQL's: its speed against the COPY)."""
    add(
        "| first scan | SQLite s | PostgreSQL s | PostgreSQL / SQLite | raw COPY s "
        "| speed against the COPY | SQLite CPU-s | PostgreSQL CPU-s (client + server) |"
    )
    add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for k, r in enumerate(rounds, 1):
        a, b = r.lite.seconds, r.pg.seconds
        add(
            f"| round {k} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {r.copy:.2f} | {r.copy / b:.2f}x "
            f"| {r.lite.cpu:.2f} | {r.pg.cpu:.2f} + {r.pg.server_cpu:.2f} |"
        )
    vs_lite = statistics.median(r.pg.seconds / r.lite.seconds for r in rounds)
    vs_copy = statistics.median(r.copy / r.pg.seconds for r in rounds)
    add(
        f"| **median** | {statistics.median(r.lite.seconds for r in rounds):.2f} "
        f"| {statistics.median(r.pg.seconds for r in rounds):.2f} | **{vs_lite:.2f}x** "
        f"| {statistics.median(r.copy for r in rounds):.2f} | **{vs_copy:.2f}x** | | |"
    )
    return vs_lite, vs_copy


def report(
    command: str,
    files: int,
    deleted: int,
    lite: Engine,
    pg: Engine,
    rounds: list[Round],
    plans: dict[str, str],
    loads: list[tuple[str, tuple[float, float, float]]],
) -> str:
    lines: list[str] = []
    add = lines.append
    add("## PostgreSQL against SQLite (bench/pg_bench.py)")
    add("")
    add("```")
    add(command)
    add("```")
    add("")
    add(
        f"{files:,} files; {len(rounds)} rounds of first scans on fresh catalogs; burst: "
        f"{deleted:,} deletions in one worker batch, {len(pg.bursts)} runs. "
        f"Date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )
    add(
        "Load average (1/5/15 min): "
        + "; ".join(f"{w} {a:.2f} {b:.2f} {c:.2f}" for w, (a, b, c) in loads)
    )
    add("")
    seed_ratio, copy_ratio = seed_table(rounds, add)
    add("")
    add("| run | SQLite s | PostgreSQL s | PostgreSQL / SQLite |")
    add("| --- | ---: | ---: | ---: |")
    for key, title in (("rescan1", "re-scan (first)"), ("rescan2", "re-scan (warm)")):
        a, b = lite.runs[key].seconds, pg.runs[key].seconds
        add(f"| {title} (last round's catalogs) | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    for k, (x, y) in enumerate(zip(lite.bursts, pg.bursts, strict=True), 1):
        add(
            f"| burst of {deleted:,} deletions, run {k} | {x.seconds:.2f} | {y.seconds:.2f} "
            f"| {y.seconds / x.seconds:.2f}x |"
        )
    a, b = lite.runs["burst"].seconds, pg.runs["burst"].seconds
    add(f"| burst, best | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    a = statistics.median(r.seconds for r in lite.bursts)
    b = statistics.median(r.seconds for r in pg.bursts)
    burst_ratio = b / a
    add(f"| burst, median | {a:.2f} | {b:.2f} | **{burst_ratio:.2f}x** |")
    add("")
    add(
        f"First scan on PostgreSQL (medians of {len(rounds)} rounds): {copy_ratio:.2f}x the "
        f"speed of a raw COPY (goal >= 0.5x: {_verdict(copy_ratio >= 0.5)}), {seed_ratio:.2f}x "
        f"the SQLite first scan's time (goal <= 1.5x: {_verdict(seed_ratio <= 1.5)}). Burst "
        f"(median): {burst_ratio:.2f}x SQLite's time (goal <= 1.5x: "
        f"{_verdict(burst_ratio <= 1.5)}). The breakdowns below are of the median round's first "
        "scans and the best burst."
    )
    for e in (lite, pg):
        for key, title in (("seed", "first scan"), ("rescan2", "warm re-scan"), ("burst", "burst")):
            add("")
            add(f"### {e.name}: {title}")
            add("")
            breakdown(e.runs[key], add)
    if plans:
        add("")
        add("### PostgreSQL: EXPLAIN (ANALYZE, BUFFERS), first statement of each shape")
        for key, plan in plans.items():
            add("")
            add(f"`{key}`")
            add("")
            add("```")
            add(plan)
            add("```")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--pg", metavar="URL", required=True, help="PostgreSQL server (scratch dbs)")
    p.add_argument("--files", type=int, default=100_000, help="files in the tree (100,000)")
    p.add_argument("--delete", type=int, help="files the burst deletes (default: all)")
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of first scans on fresh catalogs, and burst runs per engine (3)",
    )
    p.add_argument("--explain", action="store_true", help="add the EXPLAIN pass (untimed)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument(
        "--tree-dir",
        help="where the tree goes (default: the work directory under /tmp, beside the SQLite "
        "catalog); a tmpfs keeps a slow disk's unlinks out of the run",
    )
    args = p.parse_args(argv)
    if args.files < 1 or args.repeat < 1:
        p.error("--files and --repeat must be at least 1")
    if args.delete is None:
        args.delete = args.files
    if not 1 <= args.delete <= args.files:
        p.error("--delete must be between 1 and --files")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    loads = [("start", os.getloadavg())]
    work = tempfile.mkdtemp(prefix="assetd-pgbench-", dir="/tmp")
    tree = os.path.join(args.tree_dir or work, f"pgbench-tree-{os.getpid()}")
    quiet_logging()
    try:
        note(f"generating {args.files:,} files")
        generate_tree(tree, args.files, max(1, args.files // 100))
        walked = raw_walk(tree)
        rounds: list[Round] = []
        with ExitStack() as kept, scratch_db(args.pg, SCRATCH + "_x") as url_x:
            for k in range(1, args.repeat):  # rounds whose catalogs go at once
                with ExitStack() as stack:
                    rounds.append(seed_round(stack, args.pg, work, tree, walked, k, args.files)[0])
            last, lite, pg = seed_round(kept, args.pg, work, tree, walked, args.repeat, args.files)
            rounds.append(last)
            mid = median_round(rounds)
            lite.runs["seed"], pg.runs["seed"] = mid.lite, mid.pg
            rescans(lite, args.files)
            rescans(pg, args.files)
            loads.append(("after the scans", os.getloadavg()))
            step = args.files / args.delete
            gone = [walked[int(i * step)][0] for i in range(args.delete)]
            explained = explain_scan(url_x, tree, args.files) if args.explain else None
            note(f"deleting {len(gone):,} files from the disk")
            for path in gone:
                os.remove(path)
            burst(lite, gone, args.repeat)
            burst(pg, gone, args.repeat)
            loads.append(("after the bursts", os.getloadavg()))
            plans = explain_burst(explained, gone) if explained is not None else {}
        out = report(command, args.files, len(gone), lite, pg, rounds, plans, loads)
        print(out, flush=True)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(out + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.tree_dir:
            shutil.rmtree(tree, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
