"""Live-daemon benchmark: the real ``assetd run`` against baselines measured in the same run.

Every part starts ``python -m assetd run --config FILE`` as a child (state directory outside the
root, ``NOTIFY_SOCKET`` to know when it is READY, its JSON log on a file), waits until the start-up
reconcile finished and every file has its row, then acts on the disk and watches the catalog
through a read-only ``sqlite3`` connection kept open, as another program would.

1. Delete latency: ``--deletes`` single unlinks (200) in a root of ``--latency-files`` (1,000),
   one at a time; t0 just before ``os.unlink``, t1 when a 2 ms poll sees the row's
   ``is_missing = 1``. Baseline: the same unlinks on a twin tree seen by a plain watchdog
   ``InotifyObserver`` in this process (t1 = its handler called).
2. Burst: ``--burst-files`` (100,000) files in ``--burst-dirs`` (1,000) directories, catalogued,
   the daemon idle; an ``os.unlink`` loop deletes them all; then the time from the end of the
   burst until no row under the root is live (then counted: all missing, none live). Baseline: a
   raw ``sqlite3`` bulk ``UPDATE ... WHERE file_path IN (...)`` of the same rows, sorted, chunks of
   10,000, one transaction, on a copy of the catalog taken before the burst (best of
   ``--baseline-runs``, each on a fresh copy); and, for the events, the same burst on a twin
   tree watched by a plain watchdog observer in a child process (how many deletions reach it,
   kernel-queue overflows).
3. Rename: one directory holding ``--rename-files`` (100,000) files in ``--rename-dirs`` (1,000)
   subdirectories, catalogued; ``os.rename(dir, dir2)``; then the time until no row is left under
   the old prefix and every row under the new one is live. Baseline: a raw ``sqlite3`` UPDATE
   rewriting the prefix of the same rows on a copy of the catalog.

   After parts 2 and 3 a new file is created and timed until its row is live
   (``--probe-timeout``): whether the live pipeline is free again after the big change.
4. Idle CPU: a tree of ``--idle-dirs`` x ``--idle-dirs`` (100 x 100) directories; the daemon's
   utime+stime (``/proc/PID/stat``) over ``--idle-seconds`` (60) once it is READY and reconciled.
   Baseline, over the same window: a child process running a plain watchdog ``InotifyObserver``
   on the same tree (with assetd's event filter: the default mask overflows on such trees, §9).
5. RSS: VmRSS and VmHWM (``/proc/PID/status``) of the daemon after the start-up reconcile of the
   100,000-file root of part 2, and after its burst (plus the other parts' daemons, for context).
   Baseline: a child process that only imports the daemon's modules.
6. Memory (``--memory``, not part of "all"): a root of ``--burst-files`` files catalogued,
   watched and hashed (the start-up hashing waited for) by a fresh daemon with the HTTP API off
   (``listen = []``), then another with it on: VmRSS once idle, then utime+stime over
   ``--idle-seconds`` and VmRSS/VmHWM after. Baseline: the import-only child of part 5.

Default daemon settings (``quiet_ms`` 50, ``max_delay_ms`` 1000) unless ``--quiet-ms`` /
``--max-delay-ms`` say otherwise. Parts are chosen with ``--latency --burst --rename --idle --rss``
(none given: all). Temporary trees live under a fresh directory in /tmp, removed at the end unless
``--keep``. Progress goes to stderr; the Markdown report (with the command line) to stdout, and to
``--out FILE`` if given. No assertions on timing: the script prints figures, ratios and targets;
it checks only that the catalog ends up right (and says so when it does not).

    python bench/live_bench.py                              # everything, at the sizes above
    python bench/live_bench.py --latency --deletes 50       # one part, smaller
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from watchman_side import Watchman

CLK_TCK = os.sysconf("SC_CLK_TCK")
RAW_CHUNK = 10_000  # paths per statement in the raw baselines (as assetd's CHUNK)
SAMPLE_ROWS = 12  # batch.applied lines shown per part

SOURCE = ""  # source_state() at the start of the run

RssPoints = list[tuple[str, dict[str, int]]]  # (when, VmRSS/VmHWM in KiB) of the daemon


# --------------------------------------------------------------------------- output helpers


def note(message: str) -> None:
    """Progress, to stderr, so stdout stays the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}x" if b > 0 else "n/a"


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``, nearest-rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[index]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --------------------------------------------------------------------------- trees


def make_files(
    root: str, files: int, dirs: int, *, sub: str = "", distinct: bool = False
) -> list[str]:
    """``files`` small files spread evenly over ``dirs`` directories ``root/[sub/]dNNNN``;
    returns their paths, sorted. 97 contents shared among them, or each its own (``distinct``:
    a hashed tree of one asset per file)."""
    base = os.path.join(root, sub) if sub else root
    names = [os.path.join(base, f"d{j:04d}") for j in range(dirs)]
    for d in names:
        os.makedirs(d)
    paths = []
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for i in range(files):
        path = os.path.join(names[i * dirs // files], f"asset-{i:07d}.bin")
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, b"%d\n" % i if distinct else b"x" * (1 + i % 97))
        finally:
            os.close(fd)
        paths.append(path)
    paths.sort()
    return paths


def make_dir_tree(root: str, fanout: int) -> int:
    """``fanout`` x ``fanout`` empty directories under ``root``; returns how many were made."""
    for a in range(fanout):
        for b in range(fanout):
            os.makedirs(os.path.join(root, f"a{a:03d}", f"b{b:03d}"))
    return fanout * fanout + fanout


# --------------------------------------------------------------------------- /proc


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


# --------------------------------------------------------------------------- the daemon


class NotifySocket:
    """A datagram socket standing in for systemd's; collects every message."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode(errors="replace"))

    def has(self, line: str) -> bool:
        return any(line in m.split("\n") for m in self.messages)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


def parse_ts(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Daemon:
    """``assetd run`` on one root, in a work directory of its own (state dir, log, socket)."""

    def __init__(self, work: str, root: str, args: argparse.Namespace, *, api: bool = True) -> None:
        os.makedirs(work)
        self.work = work
        self.root = root
        self.state = os.path.join(work, "state")
        self.db = os.path.join(self.state, "catalog.db")
        self.log_path = os.path.join(work, "daemon.log")
        self.config = os.path.join(work, "assetd.toml")
        watch = []
        if args.quiet_ms is not None:
            watch.append(f"quiet_ms = {args.quiet_ms}")
        if args.max_delay_ms is not None:
            watch.append(f"max_delay_ms = {args.max_delay_ms}")
        if args.min_quiet_ms is not None:
            watch.append(f"min_quiet_ms = {args.min_quiet_ms}")
        if args.backend is not None:
            watch.append(f'backend = "{args.backend}"')
        text = f'[daemon]\nstate_dir = "{self.state}"\n\n'
        if watch:
            text += "[watch]\n" + "\n".join(watch) + "\n\n"
        self.hashing = not args.hashing_off
        if not self.hashing:
            text += "[hashing]\nenabled = false\n\n"
        if not api:
            text += "[api]\nlisten = []\n\n"
        text += f'[[roots]]\nname = "bench"\npath = "{root}"\ntags = ["bench"]\n'
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(text)
        self.notify: NotifySocket | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0
        self.reconciled_s = 0.0
        self.exit_code: int | None = None
        self.stop_s: float | None = None
        self._reader: sqlite3.Connection | None = None
        self.root_id = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float) -> None:
        """Start; wait for READY=1, then the start-up reconcile's end."""
        self.notify = NotifySocket(os.path.join(self.work, "notify.sock"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
        env["NOTIFY_SOCKET"] = self.notify.path
        env["PYTHONUNBUFFERED"] = "1"
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "assetd", "run", "--config", self.config],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        notify, proc = self.notify, self.proc
        wait_for(lambda: notify.has("READY=1") or proc.poll() is not None, 60, "READY=1")
        if proc.poll() is not None:
            raise SystemExit(f"assetd exited with {proc.returncode}:\n{self.log_text()[-3000:]}")
        self.ready_s = time.monotonic() - started
        wait_for(
            lambda: self.events("reconcile.finished") or proc.poll() is not None,
            timeout,
            "the start-up reconcile",
            every=0.1,
        )
        if proc.poll() is not None:
            raise SystemExit(f"assetd exited with {proc.returncode}:\n{self.log_text()[-3000:]}")
        self.reconciled_s = time.monotonic() - started
        self.root_id = int(self.reader().execute("SELECT id FROM roots").fetchone()[0])

    def reader(self) -> sqlite3.Connection:
        """The read-only connection kept open (autocommit: each SELECT sees the last commit)."""
        if self._reader is None:
            self._reader = sqlite3.connect(
                f"file:{self.db}?mode=ro", uri=True, timeout=10, isolation_level=None
            )
        return self._reader

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.reader().execute(sql, params).fetchone()[0]

    def count_under(self, prefix: str, live: bool | None = None) -> int:
        """Rows of the root strictly under directory ``prefix`` (live / missing / all)."""
        sql = (
            "SELECT count(*) FROM asset_cache_states WHERE root_id = ? "
            "AND file_path > ? AND file_path < ?"
        )
        params: list[Any] = [self.root_id, prefix + "/", prefix + "0"]
        if live is not None:
            sql += " AND is_missing = ?"
            params.append(0 if live else 1)
        return int(self.scalar(sql, *params))

    def copy_catalog(self, dest: str) -> None:
        """A consistent copy of the catalog (sqlite3 backup API), for a raw baseline."""
        out = sqlite3.connect(dest)
        try:
            self.reader().backup(out)
        finally:
            out.close()

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)

    def log_size(self) -> int:
        return os.path.getsize(self.log_path)

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def events(self, name: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """JSON log lines from byte offset ``since`` on (only event ``name`` if given)."""
        out = []
        with open(self.log_path, "rb") as f:
            f.seek(since)
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict) and (name is None or event.get("event") == name):
                    out.append(event)
        return out

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self.proc is not None and self.proc.poll() is None:
            started = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.exit_code = self.proc.wait(60)
                self.stop_s = time.monotonic() - started
            except subprocess.TimeoutExpired:
                note("assetd did not stop within 60 s of SIGTERM: killed")
                self.proc.kill()
                self.proc.wait(10)
                self.exit_code = None
        elif self.proc is not None:
            self.exit_code = self.proc.returncode
        if self.notify is not None:
            self.notify.close()
            self.notify = None


def wait_idle(daemon: Daemon, quiet: float = 1.5, timeout: float = 120) -> None:
    """Until no batch/reconcile line was logged for ``quiet`` seconds."""
    size, since = daemon.log_size(), time.monotonic()
    deadline = since + timeout
    busy = ("batch.applied", "reconcile.started", "reconcile.finished")
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_size = daemon.log_size()
        if now_size != size:
            if any(e.get("event") in busy for e in daemon.events(since=size)):
                since = time.monotonic()
            size = now_size
        if time.monotonic() - since >= quiet:
            return


def wait_hashed(d: Daemon, timeout: float) -> None:
    """Until no live row is left unhashed: the hasher's writes after the start-up reconcile
    would otherwise share the catalog with what is measured (``--hashing-load`` measures that).
    Nothing to wait for with ``--hashing-off``."""
    if not d.hashing:
        return
    sql = (
        "SELECT 1 FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
        "WHERE c.is_missing = 0 AND a.hash IS NULL LIMIT 1"
    )
    wait_for(lambda: d.reader().execute(sql).fetchone() is None, timeout, "hashing done", 0.2)


def probe_next_change(d: Daemon, directory: str, timeout: float) -> float | None:
    """Create a file in ``directory``; seconds until its row is live (None: not in time).
    Shows whether the pipeline is free right after a big change."""
    path = os.path.join(directory, f"probe-{os.urandom(4).hex()}.bin")
    con = d.reader()
    sql = "SELECT is_missing FROM asset_cache_states WHERE root_id = ? AND file_path = ?"
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        f.write(b"probe")
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        row = con.execute(sql, (d.root_id, path)).fetchone()
        if row is not None and row[0] == 0:
            return time.perf_counter() - t0
        time.sleep(0.01)
    return None


def probe_text(seconds: float | None, timeout: float) -> str:
    return f"{seconds:.2f} s" if seconds is not None else f"**not within {timeout:.0f} s**"


@dataclass
class LogSummary:
    batches: list[dict[str, Any]] = field(default_factory=list)
    reconciles: list[dict[str, Any]] = field(default_factory=list)
    overflows: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, events: list[dict[str, Any]]) -> LogSummary:
        s = cls()
        for e in events:
            name = e.get("event", "")
            if name == "batch.applied":
                s.batches.append(e)
            elif name.startswith("reconcile."):
                s.reconciles.append(e)
            elif name == "watch.overflow":
                s.overflows.append(e)
            elif name == "overflow.recovery":
                s.recoveries.append(e)
            elif e.get("level") in ("warning", "error", "critical"):
                s.problems.append(e)
        return s

    def lines(self, t0: float, t0_name: str) -> list[str]:
        """Markdown: totals, then a timeline of batch, reconcile and overflow lines."""
        out = []
        b = self.batches
        total = sum(float(e.get("duration_s", 0)) for e in b)
        longest = max((float(e.get("duration_s", 0)) for e in b), default=0.0)
        rescans = sum(int(e.get("rescanned", 0)) for e in b)
        changes = sum(int(e.get("changes", 0)) for e in b)
        out.append(
            f"Daemon log: **{len(b)} `batch.applied`** lines ({changes:,} raw changes; "
            f"{total:.2f} s of batch time in all, longest {longest:.2f} s; {rescans} subtree "
            f"rescans in them); **{len(self.overflows)} `watch.overflow`**; "
            f"{sum(1 for e in self.reconciles if e['event'] == 'reconcile.started')} "
            "reconcile passes started."
        )
        if self.problems:
            out.append("")
            out.append(
                "Other warnings/errors: "
                + "; ".join(
                    f"{e.get('event')} ({e.get('level')}, {e.get('logger')})"
                    for e in self.problems[:8]
                )
            )
        timeline = sorted(
            self.batches + self.reconciles + self.overflows + self.recoveries,
            key=lambda e: e["timestamp"],
        )
        if not timeline:
            return out
        out.append("")
        out.append(
            f"| logged at (s from {t0_name}) | line | raw changes | missing | moved | new | "
            "rescanned | duration s |"
        )
        out.append("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        keep = {id(e) for e in self.reconciles + self.overflows + self.recoveries}
        batches_shown = {id(e) for e in (b if len(b) <= SAMPLE_ROWS else b[:8] + b[-2:])}
        hidden = 0
        for e in timeline:
            if id(e) not in keep and id(e) not in batches_shown:
                hidden += 1
                continue
            if hidden:
                out.append(f"| | ... {hidden} more batch.applied ... | | | | | | |")
                hidden = 0
            name = e["event"]
            if "reason" in e:
                name += f" ({e['reason']})"
            if "directories" in e:
                name += f" ({int(e['directories']):,} directories)"
            if "rescan" in e:
                name += f" ({e['rescan']}, {float(e.get('waited_s', 0)):.3f} s after the loss)"
            cells = [
                f"{int(e[k]):,}" if k in e else ""
                for k in ("changes", "missing", "moved", "new", "rescanned")
            ]
            duration = f"{float(e['duration_s']):.3f}" if "duration_s" in e else ""
            out.append(
                f"| {parse_ts(e['timestamp']) - t0:+.3f} | {name} | {' | '.join(cells)} | "
                f"{duration} |"
            )
        if hidden:
            out.append(f"| | ... {hidden} more batch.applied ... | | | | | | |")
        return out


def daemon_context(d: Daemon) -> str:
    return (
        f"assetd READY {d.ready_s:.2f} s after exec, start-up reconcile done at "
        f"{d.reconciled_s:.2f} s"
        + "".join(
            f" (reconcile {e.get('duration_s')} s, new {e.get('new')})"
            for e in d.events("reconcile.finished")[:1]
        )
        + (
            f"; SIGTERM -> exit {d.exit_code} in {d.stop_s:.2f} s."
            if d.stop_s is not None
            else "; did not exit within 60 s of SIGTERM (killed)."
        )
    )


# --------------------------------------------------------------------------- raw baselines


def raw_connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    return con


def stamp() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")


def best_of(
    runs: int, master: str, fn: Callable[[str], tuple[float, int]]
) -> tuple[list[float], int]:
    """``fn`` on ``runs`` fresh copies of the catalog ``master``: (seconds of each, rows)."""
    times, rows = [], 0
    for n in range(runs):
        db = f"{master}.run{n}"
        shutil.copyfile(master, db)
        seconds, rows = fn(db)
        times.append(seconds)
        os.remove(db)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(db + extra)
    return times, rows


def raw_mark_missing(db: str, root_id: int, paths: list[str]) -> tuple[float, int]:
    """The statement assetd's ``bulk_update_is_missing`` issues, sorted paths, chunks of
    10,000, one transaction; (seconds, rows changed)."""
    con = raw_connect(db)
    try:
        con.execute("SELECT count(*) FROM asset_cache_states").fetchone()  # warm the pages
        now = stamp()
        ordered = sorted(paths)
        started = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        changed = 0
        for i in range(0, len(ordered), RAW_CHUNK):
            chunk = ordered[i : i + RAW_CHUNK]
            marks = ", ".join("?" * len(chunk))
            cur = con.execute(
                "UPDATE asset_cache_states SET is_missing = 1, missing_since = ?, "
                "state_changed_at = ?, state_reason = 'live' "
                f"WHERE root_id = ? AND is_missing = 0 AND file_path IN ({marks})",
                (now, now, root_id, *chunk),
            )
            changed += cur.rowcount
        con.execute("COMMIT")
        return time.perf_counter() - started, changed
    finally:
        con.close()


def raw_move_prefix(db: str, root_id: int, src: str, dest: str) -> tuple[float, int]:
    """One UPDATE rewriting the prefix of every row under ``src`` (as assetd's
    ``move_directory`` does, without its landing check); (seconds, rows changed)."""
    con = raw_connect(db)
    try:
        con.execute("SELECT count(*) FROM asset_cache_states").fetchone()
        started = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        cur = con.execute(
            "UPDATE asset_cache_states SET file_path = ? || substr(file_path, ?), "
            "state_changed_at = ?, state_reason = 'moved' "
            "WHERE root_id = ? AND file_path > ? AND file_path < ?",
            (dest, len(src) + 1, stamp(), root_id, src + "/", src + "0"),
        )
        changed = cur.rowcount
        con.execute("COMMIT")
        return time.perf_counter() - started, changed
    finally:
        con.close()


# --------------------------------------------------------------------------- part 1


class DeleteTimes:
    """A watchdog handler noting when each deletion reached it (perf_counter)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.cond = threading.Condition()

    def dispatch(self, event: Any) -> None:
        now = time.perf_counter()
        if event.event_type == "deleted" and not event.is_directory:
            with self.cond:
                self.times[os.fsdecode(event.src_path)] = now
                self.cond.notify_all()

    def wait(self, path: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: path in self.times, timeout)
            return self.times.get(path)


def watchdog_delete_latency(tree: str, victims: list[str]) -> tuple[list[float], int]:
    from watchdog.observers.inotify import InotifyObserver

    from assetd.live.watch import EVENT_FILTER

    handler = DeleteTimes()
    observer = InotifyObserver()
    observer.schedule(handler, tree, recursive=True, event_filter=EVENT_FILTER)  # type: ignore[arg-type]
    observer.start()
    lat, lost = [], 0
    try:
        time.sleep(0.5)
        for path in victims:
            t0 = time.perf_counter()
            os.unlink(path)
            t1 = handler.wait(path, 10)
            if t1 is None:
                lost += 1
            else:
                lat.append(t1 - t0)
    finally:
        observer.stop()
        observer.join(10)
    return lat, lost


@dataclass
class Part:
    title: str
    lines: list[str] = field(default_factory=list)

    def add(self, line: str = "") -> None:
        self.lines.append(line)


def hashing_round(
    args: argparse.Namespace,
    d: Daemon,
    root: str,
    con: sqlite3.Connection,
    victims: list[str],
    measure: Callable[[list[str], list[float]], None],
    into: list[float],
) -> tuple[int, float]:
    """Add sparse files (hashed at memory speed, no disk space), wait until they are
    catalogued and the hasher has started, then time single deletions again."""
    load_dir = os.path.join(root, "hashing-load")
    os.makedirs(load_dir)
    for i in range(args.hashing_load):
        with open(os.path.join(load_dir, f"big{i:03d}.bin"), "wb") as f:
            f.truncate(args.hashing_gib << 30)
    count = (
        "SELECT count(*) FROM asset_cache_states c JOIN assets a ON a.id = c.asset_id "
        "WHERE c.file_path LIKE ? AND a.hash IS NOT NULL"
    )
    like = load_dir + "/%"
    wait_for(
        lambda: d.count_under(load_dir, live=True) == args.hashing_load,
        args.timeout,
        "sparse files catalogued",
    )
    wait_for(lambda: con.execute(count, (like,)).fetchone()[0] >= 1, args.timeout, "hashing")
    before = con.execute(count, (like,)).fetchone()[0]
    taken = set(victims)
    others = [
        os.path.join(dirpath, name)
        for dirpath, _, names in os.walk(root)
        if not dirpath.startswith(load_dir)
        for name in sorted(names)
    ]
    second = [p for p in sorted(others) if p not in taken][: len(victims)]
    note(f"part 1: {len(second)} unlinks while the hasher works through the sparse files")
    t0 = time.perf_counter()
    measure(second, into)
    took = time.perf_counter() - t0
    after = con.execute(count, (like,)).fetchone()[0]
    return after - before, took


def part_latency(
    args: argparse.Namespace, work: str, rss: RssPoints, trees: str | None = None
) -> Part:
    """Part 1; the roots are made under ``trees`` (default ``work``), the daemon's state in
    ``work``."""
    part = Part("1. Delete latency (one file at a time)")
    trees = trees or work
    n, dirs = args.latency_files, max(1, args.latency_files // 100)
    deletes = min(args.deletes, n)
    step = n / deletes

    def victims_of(paths: list[str]) -> list[str]:
        return [paths[int(i * step)] for i in range(deletes)]

    # baseline first: the daemon is not running yet
    note(f"part 1: baseline, {deletes} unlinks seen by a plain watchdog InotifyObserver")
    base_tree = os.path.join(trees, "p1-watchdog")
    base_victims = victims_of(make_files(base_tree, n, dirs))
    load_base = load()
    base, lost = watchdog_delete_latency(base_tree, base_victims)

    note(f"part 1: {n:,} files, assetd start")
    root = os.path.join(trees, "p1-root")
    victims = victims_of(make_files(root, n, dirs))
    d = Daemon(os.path.join(work, "p1-daemon"), root, args)
    lat: list[float] = []
    busy_lat: list[float] = []
    wm_lat: list[float] = []
    new_lat: list[float] = []
    wm_new: list[float] = []
    ren_lat: list[float] = []
    wm_ren: list[float] = []
    wm_lost: list[str] = []
    hashed_during = (0, 0.0)
    timeouts: list[str] = []
    wm: Watchman | None = None
    try:
        d.start(args.timeout)
        wait_for(lambda: d.count_under(root, live=True) == n, args.timeout, "all rows live")
        wait_hashed(d, args.timeout)
        wait_idle(d)
        rss.append((f"{n:,}-file root, reconciled (part 1)", d.status()))
        offset = d.log_size()
        load_before = load()
        note(f"part 1: {deletes} unlinks, polling the catalog every {args.poll_ms} ms")
        con = d.reader()
        sql = "SELECT is_missing FROM asset_cache_states WHERE root_id = ? AND file_path = ?"
        pause = args.poll_ms / 1000
        if not args.no_watchman:
            note("part 1: watchman on the same root (isolated server, JSON over its socket)")
            wm = Watchman(os.path.join(work, "p1-watchman"))
            wm.start()
            wm.watch(root)
            wm.subscribe(root, "bench")
        t_start = time.time()

        def state(path: str) -> int | None:
            row = con.execute(sql, (d.root_id, path)).fetchone()
            return None if row is None else int(row[0])

        def timed(
            act: Callable[[], None],
            done: Callable[[], bool],
            expect: set[tuple[str, bool]],
            into: list[float],
            wm_into: list[float] | None,
        ) -> None:
            """t0 just before ``act``; assetd: ``done()`` polled; watchman: the push that
            completes ``expect`` (names relative to the root, exists)."""
            if wm is not None:
                wm.drain()
            t0 = time.perf_counter()
            act()
            deadline = t0 + 30
            while True:
                ok = done()
                now = time.perf_counter()
                if ok:
                    into.append(now - t0)
                    break
                if now > deadline:
                    timeouts.append(repr(expect))
                    break
                time.sleep(pause)
            if wm is None or wm_into is None:
                return
            left = set(expect)
            while left:
                try:
                    push = wm.pushes.get(timeout=max(0.0, t0 + 10 - time.perf_counter()))
                except queue.Empty:
                    wm_lost.append(repr(expect))
                    return
                if not push.fresh:
                    left -= set(push.files)
                    if not left:
                        wm_into.append(push.at - t0)

        def rel(path: str) -> str:
            return os.path.relpath(path, root)

        def measure(
            paths: list[str], into: list[float], wm_into: list[float] | None = None
        ) -> None:
            for path in paths:
                timed(
                    lambda p=path: os.unlink(p),  # type: ignore[misc]
                    lambda p=path: state(p) == 1,  # type: ignore[misc]
                    {(rel(path), False)},
                    into,
                    wm_into,
                )

        def creates(paths: list[str]) -> None:
            def write(path: str) -> None:
                with open(path, "wb") as f:
                    f.write(b"new file")

            for path in paths:
                timed(
                    lambda p=path: write(p),  # type: ignore[misc]
                    lambda p=path: state(p) == 0,  # type: ignore[misc]
                    {(rel(path), True)},
                    new_lat,
                    wm_new,
                )

        def renames(pairs: list[tuple[str, str]]) -> None:
            for src, dest in pairs:
                timed(
                    lambda a=src, b=dest: os.rename(a, b),  # type: ignore[misc]
                    lambda a=src, b=dest: state(b) == 0 and state(a) is None,  # type: ignore[misc]
                    {(rel(src), False), (rel(dest), True)},
                    ren_lat,
                    wm_ren,
                )

        measure(victims, lat, wm_lat)
        singles = min(args.singles, deletes)
        if singles:
            note(f"part 1: {singles} new files, then {singles} renames")
            fresh = [
                os.path.join(os.path.dirname(v), f"new-{i:04d}.bin")
                for i, v in enumerate(victims[:singles])
            ]
            creates(fresh)
            renames([(p, p[: -len(".bin")] + ".ren") for p in fresh])
        if wm is not None:
            wm.stop()
            wm = None
        load_after = load()
        summary = LogSummary.of(d.events(since=offset))
        if args.hashing_load:
            hashed_during = hashing_round(args, d, root, con, victims, measure, busy_lat)
    finally:
        if wm is not None:
            wm.stop()
        d.stop()

    quiet = args.quiet_ms if args.quiet_ms is not None else 50
    part.add(
        f"Root: {n:,} files in {dirs} directories; {deletes} files unlinked one at a time, each "
        f"once the previous one's row was seen missing. t0 just before `os.unlink`; assetd: t1 "
        f"when a {args.poll_ms} ms poll of a kept-open read-only sqlite3 connection sees "
        f"`is_missing = 1`; baseline: t1 when a plain watchdog `InotifyObserver` (assetd's "
        f"event filter) in the benchmark process calls its handler, on a twin tree."
    )
    part.add("")
    part.add(daemon_context(d))
    part.add(
        f"Load average (1/5/15 min): before {load_before}, after {load_after}; "
        f"baseline run at {load_base}."
    )
    part.add("")
    part.add("| observer | n | p50 ms | p90 ms | max ms | mean ms |")
    part.add("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = [
        ("assetd (unlink -> row missing)", lat),
        ("watchman, same root, same unlinks (unlink -> push)", wm_lat),
        ("assetd new file (create+write+close -> row live)", new_lat),
        ("watchman, same new files (create -> push)", wm_new),
        ("assetd rename of a file (rename -> new path live, old path gone)", ren_lat),
        ("watchman, same renames (rename -> push naming both)", wm_ren),
        ("watchdog handler (twin tree, unlinks)", base),
    ]
    if args.hashing_load:
        rows.insert(1, ("assetd while the hasher is busy", busy_lat))
    for name, values in rows:
        if values:
            part.add(
                f"| {name} | {len(values)} | {ms(pct(values, 0.5))} | {ms(pct(values, 0.9))} | "
                f"{ms(max(values))} | {ms(statistics.fmean(values))} |"
            )
        else:
            part.add(f"| {name} | 0 | - | - | - | - |")
    part.add("")
    if lat and base:
        p50, mx = pct(lat, 0.5), max(lat)
        part.add(
            f"assetd / baseline: p50 **{ratio(p50, pct(base, 0.5))}**, max "
            f"**{ratio(mx, max(base))}**. assetd p50 minus the {quiet} ms quiet window: "
            f"{ms(p50 - quiet / 1000)} ms. Target p50 <= 100 ms: "
            f"**{'met' if p50 <= 0.1 else 'NOT met'}**; max <= 1 s: "
            f"**{'met' if mx <= 1.0 else 'NOT met'}**."
        )
    for what, ours, theirs in (
        ("unlink", lat, wm_lat),
        ("new file", new_lat, wm_new),
        ("rename", ren_lat, wm_ren),
    ):
        if ours and theirs:
            p50, wp50, mx = pct(ours, 0.5), pct(theirs, 0.5), max(ours)
            part.add("")
            part.add(
                f"{what}: assetd p50 {ms(p50)} ms / watchman p50 {ms(wp50)} ms = "
                f"**{ratio(p50, wp50)}** (goal assetd p50 <= watchman p50: "
                f"**{'met' if p50 <= wp50 else 'NOT met'}**); assetd max {ms(mx)} ms, watchman "
                f"max {ms(max(theirs))} ms (goal max <= 250 ms: "
                f"**{'met' if mx <= 0.25 else 'NOT met'}**)."
            )
    if wm_lost:
        part.add("")
        part.add(f"**Not pushed by watchman within 10 s: {len(wm_lost)}** {wm_lost[:3]}.")
    if busy_lat and lat:
        part.add("")
        part.add(
            f"While hashing ({args.hashing_load} sparse files of {args.hashing_gib} GiB added "
            f"after the idle round; {hashed_during[0]} hashed during the {len(busy_lat)} "
            f"deletions, which took {hashed_during[1]:.1f} s): p50 "
            f"**{ms(pct(busy_lat, 0.5))} ms** against {ms(pct(lat, 0.5))} ms idle "
            f"({ratio(pct(busy_lat, 0.5), pct(lat, 0.5))}), max **{ms(max(busy_lat))} ms** "
            f"against {ms(max(lat))} ms."
        )
    if timeouts or lost:
        part.add("")
        part.add(
            f"**Not seen within 30 s by assetd: {len(timeouts)}** "
            f"{timeouts[:3]}; not seen by the baseline within 10 s: {lost}."
        )
    part.add("")
    part.lines += summary.lines(t_start, "first unlink")
    return part


# --------------------------------------------------------------------------- part 2 (+ 5)


def poll_until(done: Callable[[], bool], timeout: float, every: float) -> tuple[bool, float]:
    """(whether ``done`` became true, perf_counter when it was seen)."""
    deadline = time.perf_counter() + timeout
    while True:
        if done():
            return True, time.perf_counter()
        now = time.perf_counter()
        if now > deadline:
            return False, now
        time.sleep(every)


def watchdog_burst(work: str, n: int, dirs: int) -> dict[str, Any]:
    """The same burst on a twin tree, watched by a plain watchdog observer in a child process:
    how many deletions it was handed, when the last came, and its kernel-queue overflows."""
    tree = os.path.join(work, "p2-watchdog")
    paths = make_files(tree, n, dirs, sub="files")
    child = start_observer_child(tree, False)
    try:
        time.sleep(1.0)
        t0 = time.perf_counter()
        wall0 = time.time()
        for p in paths:
            os.unlink(p)
        burst = time.perf_counter() - t0
        wall_end = wall0 + burst
        seen, stable = ask_child(child), time.monotonic()
        while seen["deleted"] < n and time.monotonic() - stable < 3.0:
            time.sleep(0.2)
            now = ask_child(child)
            if now["deleted"] != seen["deleted"]:
                stable = time.monotonic()
            seen = now
    finally:
        stop_child(child)
        shutil.rmtree(tree, ignore_errors=True)
    return {
        "burst": burst,
        "deleted": int(seen["deleted"]),
        "last_after": float(seen["last"]) - wall_end if seen["last"] else None,
        "overflows": [float(t) - wall_end for t in seen["overflows"]],
    }


def parallel_find_delete(dirs: list[str], n: int) -> None:
    """Delete every file below ``dirs`` with ``n`` ``find -type f -delete`` processes at once,
    each given every ``n``-th directory."""
    slices = [dirs[i::n] for i in range(n)]
    procs = [subprocess.Popen(["find", *part, "-type", "f", "-delete"]) for part in slices if part]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"find -delete failed: exit codes {codes}")


def watchman_burst(
    wm: Watchman, top: str, paths: list[str], t_end: float, timeout: float
) -> dict[str, Any]:
    """Follow watchman's pushes for the burst: deletions under the root's ``files/`` until all
    are pushed (or a fresh-instance push shows none left), or 5 s pass with no push."""
    want = {os.path.relpath(p, top) for p in paths}
    gone: set[str] = set()
    fresh, last_at = False, None
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            push = wm.pushes.get(timeout=5.0)
        except queue.Empty:
            break
        if push.fresh:
            fresh = True
            alive = {name for name, exists in push.files if exists and name in want}
            gone = want - alive
        else:
            gone.update(name for name, exists in push.files if not exists and name in want)
        last_at = push.at
        if len(gone) == len(want):
            break
    return {
        "deleted": len(gone),
        "fresh": fresh,
        "last_after": None if last_at is None else last_at - t_end,
    }


def part_burst(
    args: argparse.Namespace,
    work: str,
    rss: RssPoints,
    show_burst: bool,
) -> Part:
    part = Part(f"2. Burst of {args.burst_files:,} deletions")
    n, dirs = args.burst_files, args.burst_dirs
    wd: dict[str, Any] | None = None
    if show_burst and not args.no_burst_watchdog:
        note(f"part 2: the same burst of {n:,} on a twin tree, seen by a plain watchdog observer")
        wd = watchdog_burst(work, n, dirs)
    note(f"part 2: generating {n:,} files in {dirs:,} directories")
    top = os.path.join(work, "p2-root")
    root = os.path.join(top, "files")  # the burst's files; the probe file goes in top/probe
    paths = make_files(top, n, dirs, sub="files")
    # --burst-share: the burst empties every k-th directory only (the rest stay, untouched)
    step = max(1, round(1 / args.burst_share))
    doomed_dirs = [os.path.join(root, f"d{j:04d}") for j in range(0, dirs, step)]
    emptied = set(doomed_dirs)
    doomed = paths if step == 1 else [p for p in paths if os.path.dirname(p) in emptied]
    k = len(doomed)
    if step > 1:
        part.title = f"2. Burst of {k:,} deletions in {len(doomed_dirs):,} of {dirs:,} directories"
    probe_dir = os.path.join(top, "probe")
    os.makedirs(probe_dir)
    d = Daemon(os.path.join(work, "p2-daemon"), top, args)
    every = args.count_poll_ms / 1000
    wm: Watchman | None = None
    wm_fig: dict[str, Any] = {}
    wm_crawl = 0.0
    try:
        note("part 2: assetd start (start-up reconcile of the whole root)")
        d.start(args.timeout)
        wait_for(lambda: d.count_under(root, live=True) == n, args.timeout, "all rows live")
        wait_hashed(d, args.timeout)
        wait_idle(d)
        rss.append((f"{n:,}-file root, after the start-up reconcile (part 2)", d.status()))
        if show_burst and not args.no_watchman:
            note("part 2: watchman on the same root, for the same burst")
            wm = Watchman(os.path.join(work, "p2-watchman"))
            wm.start()
            wm_crawl = wm.watch(top)
            wm.subscribe(top, "bench")
        copy = os.path.join(work, "p2-copy.db")
        d.copy_catalog(copy)
        if not show_burst:
            note("part 2: burst (for the RSS figure only)")
        offset = d.log_size()
        load_before = load()
        how = "`find -delete`" if args.find_delete else "an os.unlink loop"
        if args.deleters:
            how = f"{args.deleters} `find -delete` processes at once"
        note(f"part 2: deleting {k:,} files in {len(doomed_dirs):,} directories with {how}")
        unlink = os.unlink
        cpu0 = proc_cpu_seconds(d.pid)
        wm_cpu0 = wm.cpu_seconds() if wm is not None else 0.0
        wall0 = time.time()
        t0 = time.perf_counter()
        if args.deleters:  # several processes, in C: a fast burst
            parallel_find_delete(doomed_dirs, args.deleters)
        elif args.find_delete:  # another process, in C: a faster burst
            subprocess.run(["find", *doomed_dirs, "-type", "f", "-delete"], check=True)
        else:
            for p in doomed:
                unlink(p)
        t_end = time.perf_counter()
        wall_end = wall0 + (t_end - t0)
        note(f"part 2: burst took {t_end - t0:.2f} s; waiting for every row to be missing")
        live_sql = (
            "SELECT 1 FROM asset_cache_states WHERE root_id = ? AND is_missing = 0 "
            "AND file_path > ? AND file_path < ? LIMIT 1"
        )
        con = d.reader()
        under_root = (d.root_id, root + "/", root + "0")
        missing_sql = (
            "SELECT count(*) FROM asset_cache_states WHERE root_id = ? AND is_missing = 1 "
            "AND file_path > ? AND file_path < ?"
        )
        ok, t_done = poll_until(
            lambda: (
                con.execute(live_sql, under_root).fetchone() is None
                if step == 1
                else con.execute(missing_sql, under_root).fetchone()[0] >= k
            ),
            args.timeout,
            every,
        )
        cpu_done = proc_cpu_seconds(d.pid) - cpu0
        if wm is not None:
            wm_fig = watchman_burst(wm, top, doomed, t_end, args.timeout)
            wm_fig["cpu"] = wm.cpu_seconds() - wm_cpu0
            wm.stop()
            wm = None
        missing = d.count_under(root, live=False)
        live = d.count_under(root, live=True)
        load_after = load()
        note("part 2: probe: how soon is a new file catalogued now?")
        probe_s = probe_next_change(d, probe_dir, args.probe_timeout)
        note("part 2: settling (waiting for the daemon to go idle)")
        wait_idle(d, quiet=3.0)
        summary = LogSummary.of(d.events(since=offset))
        cpu_idle = proc_cpu_seconds(d.pid) - cpu0
        rss.append((f"{n:,}-file root, after the burst (part 2)", d.status()))
        live_after = d.count_under(root, live=True)
        threads = proc_threads(d.pid)
    finally:
        if wm is not None:
            wm.stop()
        d.stop()
    if not show_burst:
        return part

    raw_runs, raw_rows = best_of(
        args.baseline_runs, copy, lambda db: raw_mark_missing(db, d.root_id, doomed)
    )
    raw_s = min(raw_runs)
    note(f"part 2: raw baseline UPDATE: {raw_s:.3f} s ({raw_rows:,} rows)")
    burst = t_end - t0
    after = t_done - t_end
    part.add(
        f"Root: {n:,} files in {dirs:,} directories (`files/dNNNN`), catalogued, daemon idle. "
        "The benchmark "
        f"deletes them with an `os.unlink` loop, then polls (every {args.count_poll_ms} ms, "
        "kept-open read-only sqlite3 connection) for a live row left under the root; then counts."
    )
    part.add("")
    part.add(daemon_context(d) + f" Daemon threads after the burst: {threads}.")
    part.add(f"Load average (1/5/15 min): before the burst {load_before}, after {load_after}.")
    part.add("")
    part.add("| figure | value |")
    part.add("| --- | ---: |")
    how = "`find -type f -delete`" if args.find_delete else "unlink loop"
    if args.deleters:
        how = f"{args.deleters} `find -type f -delete` processes at once"
    part.add(f"| burst duration ({how}) | {burst:.2f} s ({k / burst:,.0f} unlinks/s) |")
    if step > 1:
        part.add(
            f"| directories emptied (`--burst-share`) / left untouched | "
            f"{len(doomed_dirs):,} ({k:,} files) / {dirs - len(doomed_dirs):,} ({n - k:,} files) |"
        )
    part.add(
        f"| end of burst -> all {k:,} rows missing (assetd) | "
        f"**{after:.2f} s**{'' if ok else ' (TIMED OUT)'} |"
    )
    part.add(f"| start of burst -> all rows missing | {t_done - t0:.2f} s |")
    part.add(f"| rows missing / live when seen done | {missing:,} / {live:,} |")
    part.add(f"| rows live after the daemon went idle | {live_after:,} |")
    part.add(
        "| then: a new file created once all were missing, catalogued after | "
        f"{probe_text(probe_s, args.probe_timeout)} |"
    )
    part.add(
        f"| baseline: raw sqlite3 sorted bulk UPDATE of {raw_rows:,} rows, chunks of "
        f"{RAW_CHUNK:,}, one transaction (copy of the catalog; best of "
        f"{', '.join(f'{t:.3f}' for t in raw_runs)}) | {raw_s:.3f} s |"
    )
    part.add(f"| assetd (end of burst -> all missing) / baseline | **{ratio(after, raw_s)}** |")
    overflowed = sum(int(e.get("count", 1)) for e in summary.overflows)
    part.add(
        f"| assetd CPU-seconds (utime+stime, all threads): start of burst -> all missing | "
        f"**{cpu_done:.2f} s** |"
    )
    part.add(f"| assetd CPU-seconds: start of burst -> daemon idle again | {cpu_idle:.2f} s |")
    losses = sum(int(e.get("losses", 0)) for e in summary.recoveries)
    part.add(
        f"| assetd kernel-queue overflows (`watch.overflow` count; losses its recoveries "
        f"counted: `watch.overflow` is logged at most once a minute) | {overflowed}; {losses} |"
    )
    for e in summary.recoveries:
        part.add(
            "| assetd recovery of lost events (`overflow.recovery`): rescan of | "
            f"{e.get('rescan')} (after {e.get('losses')} loss(es); started "
            f"{float(e.get('waited_s', 0)):.3f} s after the first) |"
        )
    for e in summary.reconciles:
        if e["event"] == "reconcile.rescan":
            part.add(
                f"| assetd rescan ({e.get('look', 'all')}): directories changed since the loss / "
                "the walk that found them | "
                f"{int(e.get('directories', 0)):,} of {dirs:,} / "
                f"{float(e.get('probe_s', 0)):.3f} s |"
            )
        elif e["event"] == "reconcile.rescanned":
            part.add(
                "| assetd rescan: rows it marked missing / files walked unchanged / its duration | "
                f"{int(e.get('missing', 0)):,} / {int(e.get('unchanged', 0)):,} / "
                f"{float(e.get('duration_s', 0)):.2f} s |"
            )
    received = sum(int(e.get("changes", 0)) for e in summary.batches)
    part.add(
        f"| assetd raw changes in its batches (the probe's too) / deletions | {received:,} / "
        f"{k:,}: about **{max(0, k - received):,} lost** to the overflow |"
    )
    if wm_fig:
        last = wm_fig["last_after"]
        part.add(
            f"| watchman (same root, same burst, same run; initial crawl {wm_crawl:.2f} s): "
            "deletions pushed | "
            f"{wm_fig['deleted']:,} of {k:,}"
            + (" (then a fresh-instance push: it recrawled)" if wm_fig["fresh"] else "")
            + " |"
        )
        part.add(
            "| watchman: end of burst -> last push needed | "
            + (f"**{last:.2f} s** |" if last is not None else "never |")
        )
        part.add(
            f"| watchman CPU-seconds: start of burst -> its last push | **{wm_fig['cpu']:.2f} s** "
            f"(assetd / watchman: **{ratio(cpu_done, wm_fig['cpu'])}**) |"
        )
    if wd is not None:
        last = wd["last_after"]
        ov = wd["overflows"]
        part.add(
            "| plain watchdog observer (child process, assetd's event filter), the same burst "
            f"on a twin tree ({wd['burst']:.2f} s): deletions handed to it | "
            f"{wd['deleted']:,} of {n:,}"
            + (f", last at {last:+.2f} s from the end of its burst" if last is not None else "")
            + (
                f"; **{len(ov)} inotify queue overflow warning(s)**, first at {ov[0]:+.2f} s"
                if ov
                else "; no overflow"
            )
            + " |"
        )
    part.add("")
    verdict = "met" if ok and after <= 2.0 else "NOT met"
    correct = missing == k and live == n - k and live_after == n - k
    part.add(
        f"Target <= 2 s from the end of the burst: **{verdict}**. Catalog after the burst: "
        f"{'correct (all missing, none live)' if correct else '**WRONG**'}."
    )
    part.add("")
    part.lines += summary.lines(wall_end, "end of burst")
    return part


# --------------------------------------------------------------------------- part 3


def part_rename(args: argparse.Namespace, work: str, rss: RssPoints) -> Part:
    part = Part(f"3. Renaming a directory of {args.rename_files:,} files")
    n, dirs = args.rename_files, args.rename_dirs
    root = os.path.join(work, "p3-root")
    old, new = os.path.join(root, "big"), os.path.join(root, "big2")
    note(f"part 3: generating {n:,} files in {dirs:,} directories under {old}")
    make_files(root, n, dirs, sub="big")
    probe_dir = os.path.join(root, "probe")
    os.makedirs(probe_dir)
    d = Daemon(os.path.join(work, "p3-daemon"), root, args)
    every = args.count_poll_ms / 1000
    stall_s = 20.0
    try:
        note("part 3: assetd start")
        d.start(args.timeout)
        wait_for(lambda: d.count_under(old, live=True) == n, args.timeout, "all rows live")
        wait_idle(d)
        copy = os.path.join(work, "p3-copy.db")
        d.copy_catalog(copy)
        offset = d.log_size()
        load_before = load()
        note(f"part 3: os.rename({old}, {new})")
        con = d.reader()
        old_sql = (
            "SELECT 1 FROM asset_cache_states WHERE root_id = ? AND file_path > ? "
            "AND file_path < ? LIMIT 1"
        )
        old_probe = (d.root_id, old + "/", old + "0")
        wall0 = time.time()
        t0 = time.perf_counter()
        os.rename(old, new)
        t_renamed = time.perf_counter()
        deadline = t0 + args.timeout
        t_old_gone: float | None = None
        t_new_live: float | None = None
        last_counts: tuple[int, int] | None = None
        last_change = time.perf_counter()
        last_count_at = 0.0
        while True:
            now = time.perf_counter()
            if t_old_gone is None and con.execute(old_sql, old_probe).fetchone() is None:
                t_old_gone = now
            if t_new_live is None and (t_old_gone is not None or now - last_count_at > 0.5):
                last_count_at = now
                new_live = d.count_under(new, live=True)
                counts = (d.count_under(old), new_live)
                if counts != last_counts:
                    last_counts, last_change = counts, now
                if new_live == n:
                    t_new_live = now
            if t_old_gone is not None and t_new_live is not None:
                break
            if now > deadline:
                note("part 3: timed out")
                break
            if t_new_live is not None and now - last_change > stall_s:
                note(f"part 3: old rows still there {stall_s:.0f} s after the new ones: stop")
                break
            time.sleep(every)
        load_after = load()
        note("part 3: probe: how soon is a new file catalogued now?")
        probe_s = probe_next_change(d, probe_dir, args.probe_timeout)
        note("part 3: settling")
        wait_idle(d, quiet=3.0)
        summary = LogSummary.of(d.events(since=offset))
        old_rows, old_missing = d.count_under(old), d.count_under(old, live=False)
        new_rows, new_live_end = d.count_under(new), d.count_under(new, live=True)
        total = int(
            d.scalar("SELECT count(*) FROM asset_cache_states WHERE root_id = ?", d.root_id)
        ) - d.count_under(probe_dir)
        rss.append((f"{n:,}-file root, after the rename (part 3)", d.status()))
    finally:
        d.stop()
    raw_runs, raw_rows = best_of(
        args.baseline_runs, copy, lambda db: raw_move_prefix(db, d.root_id, old, new)
    )
    raw_s = min(raw_runs)
    note(f"part 3: raw baseline UPDATE: {raw_s:.3f} s ({raw_rows:,} rows)")

    done = t_old_gone is not None and t_new_live is not None
    seconds = max(t_old_gone or 0.0, t_new_live or 0.0) - t0
    part.add(
        f"Root: one directory `big/` holding {n:,} files in {dirs:,} subdirectories, catalogued. "
        f"`os.rename(big, big2)` ({(t_renamed - t0) * 1000:.2f} ms), then polling (every "
        f"{args.count_poll_ms} ms) until no row is left under `big/` and {n:,} live rows are "
        "under `big2/`."
    )
    part.add("")
    part.add(daemon_context(d))
    part.add(f"Load average (1/5/15 min): before {load_before}, after {load_after}.")
    part.add("")
    part.add("| figure | value |")
    part.add("| --- | ---: |")
    part.add(
        "| rename -> no row under the old prefix | "
        + (f"{t_old_gone - t0:.2f} s" if t_old_gone is not None else "never (see below)")
        + " |"
    )
    part.add(
        f"| rename -> {n:,} live rows under the new prefix | "
        + (f"{t_new_live - t0:.2f} s" if t_new_live is not None else "never")
        + " |"
    )
    part.add(
        f"| rename -> both (assetd) | **{seconds:.2f} s**"
        + ("" if done else " (NOT reached)")
        + " |"
    )
    part.add(
        f"| baseline: raw sqlite3 UPDATE rewriting the prefix of {raw_rows:,} rows, one "
        f"transaction (copy of the catalog; best of {', '.join(f'{t:.3f}' for t in raw_runs)})"
        f" | {raw_s:.3f} s |"
    )
    part.add(f"| assetd / baseline | **{ratio(seconds, raw_s)}** |")
    part.add(
        "| then: a new file created once all rows were carried, catalogued after | "
        f"{probe_text(probe_s, args.probe_timeout)} |"
    )
    part.add("")
    rows_ok = old_rows == 0 and new_rows == n and new_live_end == n and total == n
    part.add(
        f"Catalog once idle: {old_rows:,} rows under the old prefix ({old_missing:,} missing), "
        f"{new_rows:,} under the new ({new_live_end:,} live), {total:,} rows in the root: "
        + ("correct (every row carried over)." if rows_ok else "**WRONG** (rows not carried).")
    )
    part.add("")
    part.lines += summary.lines(wall0, "rename")
    return part


# --------------------------------------------------------------------------- part 4


class _Counting:
    """The observer child's handler: counts file deletions, notes the last one's time."""

    def __init__(self) -> None:
        self.deleted = 0
        self.last = 0.0

    def dispatch(self, event: Any) -> None:
        if event.event_type == "deleted" and not event.is_directory:
            self.deleted += 1
            self.last = time.time()


def observer_child_main(tree: str) -> int:
    """``--child-observer``: a plain watchdog observer on ``tree``. Prints "ready" once
    started; on each stdin line, a JSON line of what it saw; ends when stdin closes."""
    import logging

    from watchdog.observers.inotify import InotifyObserver

    from assetd.live.watch import EVENT_FILTER

    overflows: list[float] = []

    class Overflows(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "overflow" in record.getMessage().lower():
                overflows.append(time.time())

    logger = logging.getLogger("watchdog")
    logger.addHandler(Overflows())
    logger.setLevel(logging.WARNING)
    filt = None if os.environ.get("LIVE_BENCH_DEFAULT_MASK") else EVENT_FILTER
    handler = _Counting()
    observer = InotifyObserver()
    observer.schedule(handler, tree, recursive=True, event_filter=filt)  # type: ignore[arg-type]
    observer.start()
    print("ready", flush=True)
    for _ in sys.stdin:
        seen = {"deleted": handler.deleted, "last": handler.last, "overflows": overflows}
        print(json.dumps(seen), flush=True)
    observer.stop()
    observer.join(10)
    return 0


def ask_child(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("?\n")
    proc.stdin.flush()
    return dict(json.loads(proc.stdout.readline()))


def start_observer_child(tree: str, default_mask: bool) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if default_mask:
        env["LIVE_BENCH_DEFAULT_MASK"] = "1"
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child-observer", tree],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        raise SystemExit(f"observer child: {line!r}")
    return proc


def stop_child(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def part_idle(args: argparse.Namespace, work: str, rss: RssPoints) -> Part:
    part = Part("4. Idle CPU")
    fan = args.idle_dirs
    root = os.path.join(work, "p4-root")
    note(f"part 4: making {fan} x {fan} directories")
    made = make_dir_tree(root, fan)
    d = Daemon(os.path.join(work, "p4-daemon"), root, args)
    children: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        note("part 4: assetd start")
        d.start(args.timeout)
        note("part 4: baseline observer child(ren) start")
        children.append(
            (
                "plain watchdog InotifyObserver, assetd's event filter (child process)",
                start_observer_child(root, False),
            )
        )
        if args.idle_default_mask:
            children.append(
                (
                    "plain watchdog InotifyObserver, default event mask (child process)",
                    start_observer_child(root, True),
                )
            )
        wait_idle(d, quiet=args.settle)
        time.sleep(args.settle)
        offset = d.log_size()
        pids = [("assetd run (READY, reconciled)", d.pid)] + [(n, c.pid) for n, c in children]
        load_before = load()
        note(f"part 4: measuring CPU over {args.idle_seconds:.0f} s")
        window_start = time.time()
        w0 = time.monotonic()
        before = [proc_cpu_seconds(pid) for _, pid in pids]
        time.sleep(args.idle_seconds)
        after = [proc_cpu_seconds(pid) for _, pid in pids]
        wall = time.monotonic() - w0
        load_after = load()
        summary = LogSummary.of(d.events(since=offset))
        rss.append((f"{made:,}-directory root, idle (part 4)", d.status()))
    finally:
        for _, c in children:
            stop_child(c)
        d.stop()
    part.add(
        f"Root: {fan} x {fan} directories ({made:,}, empty). After READY, the start-up "
        f"reconcile and {args.settle:.0f} s of quiet, utime+stime from `/proc/PID/stat` "
        f"(all threads; clock tick 1/{CLK_TCK} s) before and after {wall:.1f} s of idleness; "
        "the baseline process(es) measured over the same window."
    )
    part.add("")
    part.add(daemon_context(d))
    part.add(f"Load average (1/5/15 min): before {load_before}, after {load_after}.")
    part.add("")
    part.add("| process | CPU s over the window | % of one core |")
    part.add("| --- | ---: | ---: |")
    used = [a - b for a, b in zip(after, before, strict=True)]
    for (name, _), u in zip(pids, used, strict=True):
        part.add(f"| {name} | {u:.2f} | {100 * u / wall:.2f} |")
    part.add("| floor: a sleeping process | 0.00 | 0.00 |")
    part.add("")
    part.add(
        f"assetd / plain observer: {ratio(used[0], used[1]) if used[1] > 0 else 'n/a'} "
        f"(difference {used[0] - used[1]:+.2f} CPU s; the observer used {used[1]:.2f} s). "
        f"Target near zero: assetd used {100 * used[0] / wall:.2f} % of a core."
    )
    part.add("")
    part.lines += summary.lines(window_start, "start of the window")
    return part


# --------------------------------------------------------------------------- part 5


IMPORTS = ("assetd.cli", "assetd.service", "assetd.commands.scan", "assetd.commands.hash")


def import_child_main() -> int:
    """``--child-import``: import what ``assetd run`` imports, then print VmRSS/VmHWM."""
    import importlib

    for name in IMPORTS:
        importlib.import_module(name)
    print(json.dumps(proc_status(os.getpid())))
    return 0


def import_baseline() -> dict[str, int]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child-import"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def part_rss(rss: RssPoints, n: int) -> Part:
    part = Part("5. Resident memory of the daemon")
    note("part 5: import-only baseline")
    base = import_baseline()
    part.add(
        "VmRSS and VmHWM from `/proc/PID/status` of the running daemon at each point. Baseline: "
        f"a child process that only imports {', '.join(f'`{m}`' for m in IMPORTS)} "
        "(everything `assetd run` loads: SQLAlchemy, Alembic, structlog, watchdog)."
    )
    part.add("")
    part.add("| process, when | VmRSS MiB | VmHWM MiB | VmRSS / baseline |")
    part.add("| --- | ---: | ---: | ---: |")
    b = base["VmRSS"]
    part.add(f"| baseline: imports only | {b / 1024:.1f} | {base['VmHWM'] / 1024:.1f} | 1.0x |")
    for name, status in rss:
        strong = "(part 2)" in name
        r = ratio(status["VmRSS"], b)
        part.add(
            f"| assetd, {name} | {status['VmRSS'] / 1024:.1f} | {status['VmHWM'] / 1024:.1f} | "
            f"{'**' + r + '**' if strong else r} |"
        )
    return part


# --------------------------------------------------------------------------- part 6


def all_live(d: Daemon, top: str, n: int) -> Callable[[], bool]:
    return lambda: d.count_under(top, live=True) == n


def part_memory(args: argparse.Namespace, work: str) -> Part:
    """A root of ``--burst-files`` files catalogued, watched and hashed by a fresh daemon, the
    HTTP API off, then on: VmRSS/VmHWM once idle, and the CPU used over ``--idle-seconds``."""
    n, dirs = args.burst_files, args.burst_dirs
    part = Part(f"6. Memory and idle CPU at {n:,} files, the HTTP API off and on")
    top = os.path.join(work, "p6-root")
    note(f"part 6: generating {n:,} files in {dirs:,} directories")
    make_files(top, n, dirs, distinct=True)  # 97 shared contents: each merge reads its group
    note("part 6: import-only baseline")
    base = import_baseline()
    rows: list[str] = []
    for api in (False, True):
        name = "on (default: a unix socket)" if api else "off (`listen = []`)"
        d = Daemon(
            os.path.join(work, f"p6-daemon-api-{'on' if api else 'off'}"), top, args, api=api
        )
        try:
            note(f"part 6: assetd start, API {'on' if api else 'off'}")
            d.start(args.timeout)
            wait_for(all_live(d, top, n), args.timeout, "all rows live")
            hashed_at = time.monotonic()
            wait_hashed(d, args.timeout)
            hashed_s = time.monotonic() - hashed_at
            wait_idle(d, quiet=args.settle)
            time.sleep(args.settle)
            ready = proc_status(d.pid)
            load_before = load()
            note(f"part 6: measuring CPU over {args.idle_seconds:.0f} s")
            cpu0, w0 = proc_cpu_seconds(d.pid), time.monotonic()
            time.sleep(args.idle_seconds)
            used, wall = proc_cpu_seconds(d.pid) - cpu0, time.monotonic() - w0
            after = proc_status(d.pid)
            threads = proc_threads(d.pid)
        finally:
            d.stop()
        rows.append(
            f"| {name} | {d.ready_s:.2f} s / {d.reconciled_s:.2f} s | {hashed_s:.1f} s | "
            f"**{ready['VmRSS'] / 1024:.1f}** | {after['VmRSS'] / 1024:.1f} | "
            f"{after['VmHWM'] / 1024:.1f} | {used:.2f} ({100 * used / wall:.2f} %) | {threads} | "
            f"{load_before} |"
        )
    part.add(
        f"One root of {n:,} files (distinct contents) in {dirs:,} directories, a fresh "
        "daemon (state directory, catalog) for each row, hashing on: READY, the start-up "
        "reconcile, every row live, the start-up hashing of every file done (waited for: from "
        f"all rows live to no live row unhashed), then {args.settle:.0f} s of quiet. VmRSS "
        f"then; utime+stime over {args.idle_seconds:.0f} s of idleness (`/proc/PID/stat`, all "
        "threads); VmRSS and VmHWM at its end. Baseline: a child process that only imports "
        f"{', '.join(f'`{m}`' for m in IMPORTS)}: VmRSS {base['VmRSS'] / 1024:.1f} MiB, VmHWM "
        f"{base['VmHWM'] / 1024:.1f} MiB. Goal: VmRSS <= 100 MiB with the API off; idle CPU ~0."
    )
    part.add("")
    part.add(
        "| HTTP API | READY / reconciled | start-up hashing | VmRSS MiB once idle | VmRSS MiB "
        "after the idle window | VmHWM MiB | CPU s over the idle window (% of a core) | threads "
        "| load (1/5/15) before the window |"
    )
    part.add("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    part.lines += rows
    return part


# --------------------------------------------------------------------------- the run


def source_state() -> str:
    """The commit the daemon ran from (the checkout ``assetd`` is imported from, as the child
    daemons inherit this process's ``PYTHONPATH``), and whether daemon/ had uncommitted changes."""
    import assetd

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(assetd.__file__))))
    try:
        head = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--", "daemon"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "source: not a git checkout"
    return f"assetd from {repo} at commit {head}" + (
        f" with {len(dirty)} uncommitted file(s) under daemon/" if dirty else " (clean daemon/)"
    )


def report(args: argparse.Namespace, command: str, parts: list[Part], loads: list[str]) -> str:
    import sqlalchemy
    import watchdog.version

    lines = ["## assetd live benchmark", "", "```", command, "```", ""]
    quiet = args.quiet_ms if args.quiet_ms is not None else "50 (default)"
    delay = args.max_delay_ms if args.max_delay_ms is not None else "1000 (default)"
    lines.append(
        f"{platform.platform()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, watchdog "
        f"{watchdog.version.VERSION_STRING}; {SOURCE}. Daemon: `assetd run`, SQLite catalog, "
        f"quiet_ms {quiet}, max_delay_ms {delay}, other settings default. Trees on "
        f"{filesystem_of(tempfile.gettempdir())} under /tmp. Load average (1/5/15 min) at the "
        f"start {loads[0]}, at the end {loads[-1]} (the machine runs other work)."
    )
    for part in parts:
        lines += ["", f"### {part.title}", "", *part.lines]
    return "\n".join(lines).rstrip() + "\n"


def filesystem_of(path: str) -> str:
    best, kind = "", "?"
    real = os.path.realpath(path)
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                mount = parts[1]
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
    return kind


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the live assetd daemon (delete latency, a burst of deletions, a "
        "directory rename, idle CPU, RSS) against baselines measured in the same run.",
    )
    g = p.add_argument_group("parts (none given: all)")
    g.add_argument("--latency", action="store_true", help="1. single-delete latency")
    g.add_argument("--burst", action="store_true", help="2. burst of deletions")
    g.add_argument("--rename", action="store_true", help="3. renaming a big directory")
    g.add_argument("--idle", action="store_true", help="4. idle CPU")
    g.add_argument("--rss", action="store_true", help="5. RSS (runs part 2's daemon and burst)")
    g.add_argument(
        "--memory",
        action="store_true",
        help="6. RSS and idle CPU at --burst-files files, hashed, the API off and on "
        "(not in 'all')",
    )
    s = p.add_argument_group("sizes and settings")
    s.add_argument("--latency-files", type=int, default=1000, help="files in part 1's root")
    s.add_argument(
        "--hashing-load",
        type=int,
        default=0,
        help="part 1 again while the hasher works through this many sparse files",
    )
    s.add_argument("--hashing-gib", type=int, default=8, help="size of each sparse file, GiB")
    s.add_argument("--deletes", type=int, default=200, help="unlinks timed in part 1")
    s.add_argument("--poll-ms", type=float, default=2, help="part 1's catalog poll (2 ms)")
    s.add_argument(
        "--singles", type=int, default=50, help="part 1: new files, then renames, timed (50)"
    )
    s.add_argument(
        "--no-watchman", action="store_true", help="leave watchman out (it is run beside assetd)"
    )
    s.add_argument("--burst-files", type=int, default=100_000)
    s.add_argument("--burst-dirs", type=int, default=1000)
    s.add_argument("--rename-files", type=int, default=100_000)
    s.add_argument("--rename-dirs", type=int, default=1000)
    s.add_argument("--count-poll-ms", type=float, default=10, help="parts 2-3 poll (10 ms)")
    s.add_argument("--idle-dirs", type=int, default=100, help="fan-out: N x N directories")
    s.add_argument("--idle-seconds", type=float, default=60)
    s.add_argument(
        "--idle-default-mask",
        action="store_true",
        help="part 4: also a watchdog observer with its default event mask (may spin a core)",
    )
    s.add_argument("--settle", type=float, default=3.0, help="quiet seconds before part 4")
    s.add_argument("--quiet-ms", type=int, help="daemon [watch] quiet_ms (default: its own)")
    s.add_argument("--max-delay-ms", type=int, help="daemon [watch] max_delay_ms")
    s.add_argument("--min-quiet-ms", type=int, help="daemon [watch] min_quiet_ms")
    s.add_argument("--backend", help="daemon [watch] backend (default: its own)")
    s.add_argument(
        "--hashing-off",
        action="store_true",
        help="daemon [hashing] enabled = false (else the start-up hashing is waited for)",
    )
    s.add_argument("--timeout", type=float, default=600, help="longest wait for the catalog (s)")
    s.add_argument(
        "--probe-timeout",
        type=float,
        default=120,
        help="parts 2-3: longest wait for a file created after the big change (s)",
    )
    s.add_argument(
        "--find-delete",
        action="store_true",
        help="part 2: delete with `find -type f -delete` (another process) instead of os.unlink",
    )
    s.add_argument(
        "--deleters",
        type=int,
        default=0,
        metavar="N",
        help="part 2: delete with N `find DIRS -type f -delete` processes at once, each given "
        "every Nth directory (a fast burst, to overflow the kernel queue)",
    )
    s.add_argument(
        "--burst-share",
        type=float,
        default=1.0,
        metavar="F",
        help="part 2: empty every (1/F)-th directory only (default 1: all); the rest untouched",
    )
    s.add_argument("--baseline-runs", type=int, default=3, help="raw SQL baselines: best of K (3)")
    s.add_argument(
        "--no-burst-watchdog",
        action="store_true",
        help="part 2: skip the plain-watchdog run of the same burst (saves a 100k tree)",
    )
    s.add_argument("--keep", action="store_true", help="keep the work directory")
    s.add_argument("--out", help="also write the report to this file")
    p.add_argument("--child-observer", metavar="TREE", help=argparse.SUPPRESS)
    p.add_argument("--child-import", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not any((args.latency, args.burst, args.rename, args.idle, args.rss, args.memory)):
        args.latency = args.burst = args.rename = args.idle = args.rss = True
    for name in ("latency_files", "deletes", "burst_files", "burst_dirs", "rename_files"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_observer:
        return observer_child_main(args.child_observer)
    if args.child_import:
        return import_child_main()
    command = shlex.join(["python", *(sys.argv if argv is None else [sys.argv[0], *argv])])
    global SOURCE
    SOURCE = source_state()  # at the start: the daemons run what the tree holds now
    work = tempfile.mkdtemp(prefix="assetd-live-", dir="/tmp")
    note(f"work directory {work}; load average {load()}")
    loads = [load()]
    parts: list[Part] = []
    rss: RssPoints = []
    try:
        steps: Iterator[tuple[bool, Callable[[], Part]]] = iter(
            (
                (args.latency, lambda: part_latency(args, work, rss)),
                (args.burst or args.rss, lambda: part_burst(args, work, rss, args.burst)),
                (args.rename, lambda: part_rename(args, work, rss)),
                (args.idle, lambda: part_idle(args, work, rss)),
            )
        )
        for wanted, run in steps:
            if wanted:
                made = run()
                if made.lines:
                    parts.append(made)
        if args.rss:
            parts.append(part_rss(rss, args.burst_files))
        if args.memory:
            parts.append(part_memory(args, work))
    finally:
        if args.keep:
            note(f"kept {work}")
        else:
            note(f"removing {work}")
            shutil.rmtree(work, ignore_errors=True)
    loads.append(load())
    text = report(args, command, parts, loads)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
