"""The fanotify watch backend against inotify and Watchman, in one run (issue 17).

The trees live on a filesystem of their own that the benchmark mounts (``--fs``): a loop-mounted
ext4 image in /dev/shm (default; ``mkfs.ext4 -N`` gives it enough inodes) or a tmpfs; ``none``
keeps them on /var/tmp, the filesystem every other process shares (a filesystem mark then sees
their changes too). A library on a filesystem of its own (a NAS export, a model disk) is the case
fanotify is for. The daemons' state directories stay on /var/tmp, off the watched filesystem.

1. Start-up and kernel memory: a tree of ``--files`` empty files in ``--dirs`` directories
   (default 1,000,000 in 100,000), built once; the real ``assetd run`` is started with
   ``[watch] backend = "inotify"`` then ``"fanotify"`` (fresh state directory each, one after
   the other), exec to ``READY=1`` timed, then stopped (SIGTERM) without waiting for its start-up
   reconcile, and started again on the same state directory (a restart: the catalog is there,
   nothing creates its schema) and timed again; then Watchman watches the same tree (its crawl
   timed). Kernel memory: the fsnotify mark slab caches (``inotify_inode_mark`` /
   ``fanotify_mark`` and ``fsnotify_mark_connector``, which SLUB merges with same-size caches:
   their merged cache's objects, from /sys/kernel/slab) and ``SUnreclaim`` of /proc/meminfo,
   before the start and at READY.
2. Deletions: ``--deletions`` files (default 100,000) in 1,000 directories, catalogued by
   ``assetd scan``; for each backend the daemon is started, its start-up reconcile awaited, every
   file unlinked, and the time from the last unlink until the catalog marks all of them missing
   measured, with the count found missing (zero lost: all of them); Watchman: the last unlink
   until its subscription has pushed every deletion.
2b. ``--watcher N``: N deletions seen by the watch layer alone (a ``RootWatcher`` in this
   process, no daemon, no catalog): the last unlink until the last deletion is in the queue.
3. Single changes: ``live_bench.py``'s part 1 (unlink, new file, rename; p50 and max) for each
   backend, Watchman beside the first, roots on the same filesystem.
4. ``--million``: the 1,000,000-file tree of part 1 catalogued by the fanotify daemon, then every
   file unlinked: the last unlink until all are missing.

Prints Markdown tables. Needs root (fanotify's CAP_SYS_ADMIN, the mount) and, for the inotify
start-up and Watchman, ``fs.inotify.max_user_watches`` above ``--dirs``.

    python bench/fanotify_bench.py [--files 1000000] [--dirs 100000] [--deletions 100000]
        [--fs ext4|tmpfs|none] [--million] [--skip-latency] [--watcher N] [--no-watchman]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import live_bench
from live_bench import NotifySocket, wait_for  # the same notify socket and wait
from watchman_side import Watchman

MARK_CACHES = ("inotify_inode_mark", "fanotify_mark", "fsnotify_mark_connector")


def make_tree(root: Path, files: int, dirs: int) -> None:
    """``files`` empty files spread over ``dirs`` directories (100 per parent directory)."""
    per_dir = max(1, files // dirs)
    made = 0
    for d in range(dirs):
        directory = root / f"g{d // 100:04}" / f"d{d:06}"
        directory.mkdir(parents=True, exist_ok=True)
        for f in range(per_dir if d < dirs - 1 else files - made):
            os.close(os.open(directory / f"f{f:04}", os.O_CREAT | os.O_WRONLY, 0o644))
        made += per_dir


class Daemon:
    def __init__(self, work: Path, root: Path, backend: str) -> None:
        self.work = work
        self.state = work / "state"
        self.log_path = work / "daemon.log"
        self.config = work / "assetd.toml"
        self.config.write_text(
            f'[daemon]\nstate_dir = "{self.state}"\n\n[watch]\nbackend = "{backend}"\n'
            "queue_size = 1000000\n\n[hashing]\nenabled = false\n\n"
            '[reconcile]\ninterval = "30d"\n\n'
            f'[[roots]]\nname = "bench"\npath = "{root}"\n',
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify: NotifySocket | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {  # the bytecode cache on, as on a user's machine (see start_bench.py)
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ASSETD_") and k != "PYTHONDONTWRITEBYTECODE"
        }
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def scan(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "assetd", "--config", str(self.config), "scan"],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def start(self) -> float:
        """Exec -> READY=1, in seconds."""
        self.starts += 1
        self.notify = NotifySocket(str(self.work / f"notify-{self.starts}.sock"))
        env = self.env()
        env["NOTIFY_SOCKET"] = self.notify.path
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "assetd", "run", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        notify, proc = self.notify, self.proc
        wait_for(lambda: notify.has("READY=1") or proc.poll() is not None, 600, "READY=1", 0.01)
        if proc.poll() is not None:
            tail = self.log_path.read_text()[-2000:]
            raise SystemExit(f"assetd exited {proc.returncode}: {tail}")
        return time.monotonic() - started

    def logged(self, event: str) -> bool:
        return f'"event": "{event}"' in self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def batches(self, since: int) -> str:
        """The ``batch.applied`` lines logged after byte ``since``: how many, the rows they
        marked missing, the worker's seconds in all and the longest batch."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            lines = f.read().decode(errors="replace").splitlines()
        rows = [json.loads(x) for x in lines if '"event": "batch.applied"' in x]
        if not rows:
            return "-"
        total = sum(float(r.get("duration_s", 0.0)) for r in rows)
        longest = max(float(r.get("duration_s", 0.0)) for r in rows)
        missing = sum(int(r.get("missing", 0)) for r in rows)
        return f"{len(rows)} ({missing:,} rows, {total:.2f} s, longest {longest:.2f} s)"

    def cpu_seconds(self) -> float:
        """utime + stime of the daemon so far (all its threads)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)
        if self.notify is not None:
            self.notify.close()

    def missing(self) -> int:
        con = sqlite3.connect(f"file:{self.state / 'catalog.db'}?mode=ro", uri=True, timeout=10)
        try:
            row = con.execute("SELECT count(*) FROM asset_cache_states WHERE is_missing = 1")
            return int(row.fetchone()[0])
        finally:
            con.close()


# --------------------------------------------------------------------------- the filesystem


@contextlib.contextmanager
def dedicated_fs(kind: str, base: Path, inodes: int) -> Iterator[Path]:
    """A filesystem of the benchmark's own, mounted at ``base/mnt`` (unmounted at the end)."""
    mnt = base / "mnt"
    mnt.mkdir()
    if kind == "none":
        yield mnt
        return
    image = None
    if kind == "ext4":
        fd, name = tempfile.mkstemp(prefix="assetd-fanotify-", suffix=".img", dir="/dev/shm")
        os.close(fd)
        image = Path(name)
        size = max(2 << 30, inodes * 2048)
        os.truncate(image, size)  # sparse: only what ext4 writes takes memory
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-N", str(inodes), "-E", "nodiscard", str(image)],
            check=True,
        )
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    else:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size=4g,nr_inodes={inodes}", "tmpfs", str(mnt)],
            check=True,
        )
    try:
        yield mnt
    finally:
        for _ in range(20):  # a daemon or watchman just stopped may hold it a moment longer
            if subprocess.run(["umount", str(mnt)], check=False).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        if image is not None:
            image.unlink(missing_ok=True)


def describe_fs(kind: str, inodes: int) -> str:
    if kind == "ext4":
        return (
            f"a loop-mounted ext4 image in /dev/shm (`mkfs.ext4 -N {inodes:,}`), mounted for "
            "the run: the only changes on it are the benchmark's"
        )
    if kind == "tmpfs":
        return f"a tmpfs mounted for the run (nr_inodes={inodes:,})"
    return "/var/tmp, the root filesystem every other process on the machine shares"


# --------------------------------------------------------------------------- kernel memory


def slab_objects() -> dict[str, tuple[int, int]]:
    """For each fsnotify mark cache: (objects in use, object size) of the cache it is merged
    into (``/sys/kernel/slab/NAME`` is a link to the merged cache)."""
    out: dict[str, tuple[int, int]] = {}
    for name in MARK_CACHES:
        where = Path("/sys/kernel/slab") / name
        try:
            objects = int((where / "objects").read_text().split()[0])
            size = int((where / "slab_size").read_text())
        except (OSError, ValueError, IndexError):
            continue
        out[name] = (objects, size)
    return out


def unreclaimable_kib() -> int:
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("SUnreclaim:"):
                return int(line.split()[1])
    return 0


class Memory:
    """Kernel memory before and after one watcher's start."""

    def __init__(self) -> None:
        self.slab = slab_objects()
        self.unreclaim = unreclaimable_kib()

    def delta(self) -> tuple[int, int, int]:
        """(mark objects added, their bytes, SUnreclaim KiB added) since construction; caches
        merged into one are counted once."""
        now = slab_objects()
        seen: set[str] = set()
        objects = nbytes = 0
        for name, (count, size) in now.items():
            target = os.path.realpath(f"/sys/kernel/slab/{name}")
            if target in seen or name not in self.slab:
                continue
            seen.add(target)
            added = count - self.slab[name][0]
            objects += added
            nbytes += added * size
        return objects, nbytes, unreclaimable_kib() - self.unreclaim


def mib(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


# --------------------------------------------------------------------------- parts


def startup(args: argparse.Namespace, base: Path, tree: Path) -> list[str]:
    out = [
        "",
        "| watcher | exec to READY=1, new catalog (Watchman: watch + crawl) | ratio to inotify | "
        "restart: exec to READY=1, catalog there | mark slab objects added | their memory | "
        "SUnreclaim added |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    times: dict[str, float] = {}
    for backend in ("inotify", "fanotify"):
        work = base / f"start-{backend}"
        work.mkdir()
        d = Daemon(work, tree, backend)
        mem = Memory()
        try:
            times[backend] = d.start()
            objects, nbytes, unreclaim = mem.delta()
        finally:
            d.stop()
        if not d.logged("daemon.started") or f'"bench": "{backend}"' not in d.log_path.read_text():
            raise SystemExit(f"{backend}: the daemon did not watch the root with {backend}")
        try:  # the same state directory again: what a restart (or a reboot) costs
            again = d.start()
        finally:
            d.stop()
        out.append(
            f"| assetd, {backend} | {times[backend]:.2f} s | "
            f"{times[backend] / times['inotify']:.2f} | {again:.2f} s | {objects:,} | "
            f"{mib(nbytes)} | {mib(unreclaim * 1024)} |"
        )
    if not args.no_watchman:
        live_bench.note("start-up: watchman on the same tree")
        wm = Watchman(str(base / "start-watchman"))
        mem = Memory()
        wm.start()
        try:
            took = wm.watch(str(tree))
            objects, nbytes, unreclaim = mem.delta()
        finally:
            wm.stop()
        out.append(
            f"| Watchman 4.9 | {took:.2f} s | {took / times['inotify']:.2f} | - | {objects:,} | "
            f"{mib(nbytes)} | {mib(unreclaim * 1024)} |"
        )
    return out


def unlink_all(root: Path) -> tuple[float, float]:
    """Unlink every file below ``root`` (sorted walk); (first unlink, last unlink) times."""
    t0 = time.monotonic()
    for dirpath, _, names in sorted(os.walk(root)):
        for name in names:
            os.unlink(os.path.join(dirpath, name))
    return t0, time.monotonic()


def deletions(args: argparse.Namespace, base: Path, mnt: Path) -> list[str]:
    out = [
        "",
        f"Deletions: {args.deletions:,} files in 1,000 directories, catalogued by `assetd scan`, "
        "then unlinked while the daemon runs (Watchman: while it watches, subscribed).",
        "",
        "| watcher | unlink all | last unlink to all missing (Watchman: all pushed) | "
        "missing / deleted | daemon CPU-s, first unlink to all missing | batch.applied (rows "
        "missing, worker seconds) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for backend in ("inotify", "fanotify"):
        root = mnt / f"del-{backend}"
        make_tree(root, args.deletions, 1000)
        work = base / f"work-del-{backend}"
        work.mkdir()
        d = Daemon(work, root, backend)
        d.scan()
        try:
            d.start()
            wait_for(lambda: d.logged("reconcile.finished"), 600, "start-up reconcile", 0.1)  # noqa: B023
            live_bench.note(f"deletions: {backend}, unlinking")
            offset, cpu0 = d.log_size(), d.cpu_seconds()
            t0, done = unlink_all(root)
            wait_for(lambda: d.missing() >= args.deletions, 900, "all missing", 0.05)  # noqa: B023
            seen = time.monotonic()
            cpu = d.cpu_seconds() - cpu0
            found = d.missing()
        finally:
            d.stop()
        out.append(
            f"| assetd, {backend} | {done - t0:.1f} s | {seen - done:.2f} s | "
            f"{found:,} / {args.deletions:,} | {cpu:.2f} | {d.batches(offset)} |"
        )
    if not args.no_watchman:
        root = mnt / "del-watchman"
        make_tree(root, args.deletions, 1000)
        paths = sorted(str(p) for p in root.rglob("f*") if p.is_file())
        wm = Watchman(str(base / "del-watchman"))
        wm.start()
        try:
            wm.watch(str(root))
            wm.subscribe(str(root), "bench")
            live_bench.note("deletions: watchman, unlinking")
            t0, done = unlink_all(root)
            t_end = time.perf_counter() - (time.monotonic() - done)
            pushed = live_bench.watchman_burst(wm, str(root), paths, t_end, 900)
        finally:
            wm.stop()
        after = pushed["last_after"]
        out.append(
            f"| Watchman 4.9 | {done - t0:.1f} s | "
            f"{'-' if after is None else f'{after:.2f} s'} | "
            f"{pushed['deleted']:,} / {args.deletions:,} pushed | - | - |"
        )
    return out


def watcher_alone(args: argparse.Namespace, mnt: Path) -> list[str]:
    """The same burst seen by the watch layer alone (a RootWatcher in this process, into the
    queue the daemon's debouncer reads): where the backend ends and the catalog begins."""
    import queue

    from assetd.config import RootConfig
    from assetd.fsutil import IgnoreRules
    from assetd.live.changes import Change, Kind
    from assetd.live.observers import RootWatcher
    from assetd.live.watch import QueueSink

    n = args.watcher
    out = [
        "",
        f"The watch layer alone: {n:,} files in 1,000 directories unlinked while a `RootWatcher` "
        "in the benchmark process (no daemon, no catalog) feeds the queue the daemon's debouncer "
        "reads; the time from the last unlink until the last deletion is in the queue.",
        "",
        "| backend | unlink all | last unlink to last deletion queued | deletions queued |",
        "| --- | ---: | ---: | ---: |",
    ]
    for backend in ("inotify", "fanotify"):
        root = mnt / f"watcher-{backend}"
        make_tree(root, n, 1000)
        changes: queue.Queue[Change | None] = queue.Queue()
        overflows: list[str] = []
        watcher = RootWatcher(
            RootConfig(name="w", path=str(root)),
            QueueSink(changes, overflows.append, root_name="w"),
            IgnoreRules(()),
            on_overflow=overflows.append,
            on_root_event=lambda *_: None,
            backend=backend,
        )
        watcher.start()
        try:
            t0, done = unlink_all(root)
            deleted, last = 0, done
            while deleted < n:
                try:
                    change = changes.get(timeout=60)
                except queue.Empty:
                    break
                if change is not None and change.kind is Kind.DELETED:
                    deleted += 1
                    last = time.monotonic()
        finally:
            watcher.stop()
        lost = f" ({len(overflows)} overflows)" if overflows else ""
        out.append(
            f"| {backend} | {done - t0:.1f} s | {last - done:.2f} s | {deleted:,} / {n:,}{lost} |"
        )
    return out


def latency(args: argparse.Namespace, base: Path, mnt: Path) -> list[str]:
    out: list[str] = []
    for n, backend in enumerate(("inotify", "fanotify")):
        argv = ["--latency", "--hashing-off", "--backend", backend]
        if n or args.no_watchman:
            argv.append("--no-watchman")
        largs = live_bench.parse_args(argv)
        work, trees = base / f"lat-{backend}", mnt / f"lat-{backend}"
        work.mkdir()
        trees.mkdir()
        part = live_bench.part_latency(largs, str(work), [], str(trees))
        out += ["", f"### Single changes, backend {backend}", "", *part.lines]
    return out


def million(base: Path, tree: Path, files: int) -> list[str]:
    """The fanotify daemon catalogues the big tree, then every file of it is unlinked."""
    work = base / "million"
    work.mkdir()
    d = Daemon(work, tree, "fanotify")
    try:
        d.start()
        live_bench.note(f"million: waiting for the start-up reconcile of {files:,} files")
        wait_for(lambda: d.logged("reconcile.finished"), 3600, "start-up reconcile", 0.5)
        live_bench.note("million: unlinking")
        offset, cpu0 = d.log_size(), d.cpu_seconds()
        t0, done = unlink_all(tree)
        wait_for(lambda: d.missing() >= files, 3600, "all missing", 0.1)
        seen = time.monotonic()
        cpu = d.cpu_seconds() - cpu0
        found = d.missing()
    finally:
        d.stop()
    return [
        "",
        f"{files:,} deletions (the start-up tree, catalogued by the fanotify daemon's start-up "
        "reconcile):",
        "",
        "| backend | unlink all | last unlink to all missing | missing / deleted | daemon CPU-s, "
        "first unlink to all missing | batch.applied (rows missing, worker seconds) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        f"| fanotify | {done - t0:.1f} s | {seen - done:.2f} s | {found:,} / {files:,} | "
        f"{cpu:.2f} | {d.batches(offset)} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--dirs", type=int, default=100_000)
    parser.add_argument("--deletions", type=int, default=100_000)
    parser.add_argument("--fs", choices=("ext4", "tmpfs", "none"), default="ext4")
    parser.add_argument("--million", action="store_true", help="4. delete the start-up tree")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument(
        "--watcher", type=int, default=0, help="2b. this many deletions seen by the watch layer"
    )
    parser.add_argument("--no-watchman", action="store_true")
    args = parser.parse_args()
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {live_bench.load()} at the start."
    )
    base = Path(tempfile.mkdtemp(prefix="assetd-fanotify-", dir="/var/tmp"))
    inodes = args.files + args.dirs + 4 * args.deletions + 2 * args.watcher + 200_000
    lines: list[str] = []
    try:
        with dedicated_fs(args.fs, base, inodes) as mnt:
            lines.append(f"Trees on {describe_fs(args.fs, inodes)}.")
            if args.files:
                tree = mnt / "tree"
                live_bench.note(f"building {args.files:,} files in {args.dirs:,} directories")
                started = time.monotonic()
                make_tree(tree, args.files, args.dirs)
                lines.append(
                    f"Start-up tree: {args.files:,} files in {args.dirs:,} directories, made in "
                    f"{time.monotonic() - started:.0f} s; load average {live_bench.load()}."
                )
                lines += startup(args, base, tree)
            if args.deletions:
                lines += deletions(args, base, mnt)
                lines.append(f"Load average after the deletions: {live_bench.load()}.")
            if args.watcher:
                lines += watcher_alone(args, mnt)
            if not args.skip_latency:
                lines += latency(args, base, mnt)
            if args.million and args.files:
                lines += million(base, mnt / "tree", args.files)
    except BaseException:
        print("\n".join(lines), file=sys.stderr)  # the figures of the parts that ran
        raise
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
    print("\n".join(lines))
    print()
    print(f"load average {live_bench.load()} at the end.")


if __name__ == "__main__":
    main()
