"""The fanotify watch backend against inotify, in one run (issue 17).

1. Start-up: a tree of ``--files`` empty files in ``--dirs`` directories (default 1,000,000 in
   100,000); the real ``assetd run`` is started with ``[watch] backend = "inotify"`` then
   ``"fanotify"`` (each with a fresh state directory, one after the other), and the time from
   exec to ``READY=1`` is measured; the daemon is then stopped (SIGTERM) without waiting for its
   start-up reconcile. inotify walks the tree and adds a watch per directory before READY;
   fanotify adds one mark.
2. Deletions: ``--deletions`` files (default 100,000) in 1,000 directories, catalogued by
   ``assetd scan``; for each backend the daemon is started, its start-up reconcile awaited, every
   file unlinked, and the time from the last unlink until the catalog marks all of them missing
   measured, with the count found missing (zero lost: all of them).

Prints a Markdown table per part. Needs root (fanotify's CAP_SYS_ADMIN) and, for the inotify
start-up, ``fs.inotify.max_user_watches`` above ``--dirs``.

    python bench/fanotify_bench.py [--files 1000000] [--dirs 100000] [--deletions 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from live_bench import NotifySocket, wait_for  # the same notify socket and wait


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

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETD_")}
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
        self.notify = NotifySocket(str(self.work / "notify.sock"))
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


def startup(args: argparse.Namespace, base: Path) -> list[str]:
    tree = base / "tree"
    started = time.monotonic()
    make_tree(tree, args.files, args.dirs)
    made = time.monotonic() - started
    out = [
        f"Tree: {args.files:,} files in {args.dirs:,} directories, made in {made:.0f} s.",
        "",
        "| backend | exec to READY=1 | ratio to inotify |",
        "| --- | ---: | ---: |",
    ]
    times: dict[str, float] = {}
    for backend in ("inotify", "fanotify"):
        work = base / f"start-{backend}"
        work.mkdir()
        d = Daemon(work, tree, backend)
        try:
            times[backend] = d.start()
        finally:
            d.stop()
        if not d.logged("daemon.started") or f'"bench": "{backend}"' not in d.log_path.read_text():
            raise SystemExit(f"{backend}: the daemon did not watch the root with {backend}")
    for backend, seconds in times.items():
        out.append(f"| {backend} | {seconds:.2f} s | {seconds / times['inotify']:.2f} |")
    return out


def deletions(args: argparse.Namespace, base: Path) -> list[str]:
    out = [
        "",
        f"Deletions: {args.deletions:,} files in 1,000 directories, catalogued by `assetd scan`, "
        "then unlinked while the daemon runs.",
        "",
        "| backend | unlink all | last unlink to all missing | missing / deleted |",
        "| --- | ---: | ---: | ---: |",
    ]
    for backend in ("inotify", "fanotify"):
        root = base / f"del-{backend}"
        make_tree(root, args.deletions, 1000)
        work = base / f"work-del-{backend}"
        work.mkdir()
        d = Daemon(work, root, backend)
        d.scan()
        try:
            d.start()
            wait_for(lambda: d.logged("reconcile.finished"), 600, "start-up reconcile", 0.1)  # noqa: B023
            t0 = time.monotonic()
            for directory in sorted(root.iterdir()):
                for sub in sorted(directory.iterdir()):
                    for name in os.listdir(sub):
                        os.unlink(sub / name)
            done = time.monotonic()
            wait_for(lambda: d.missing() >= args.deletions, 600, "all missing", 0.05)  # noqa: B023
            seen = time.monotonic()
            found = d.missing()
        finally:
            d.stop()
        out.append(
            f"| {backend} | {done - t0:.1f} s | {seen - done:.2f} s | "
            f"{found:,} / {args.deletions:,} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--dirs", type=int, default=100_000)
    parser.add_argument("--deletions", type=int, default=100_000)
    args = parser.parse_args()
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the start."
    )
    print()
    base = Path(tempfile.mkdtemp(prefix="assetd-fanotify-", dir="/var/tmp"))
    try:
        lines = startup(args, base) if args.files else []
        if args.deletions:
            lines += deletions(args, base)
        print("\n".join(lines))
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
    print()
    print(f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.")


if __name__ == "__main__":
    main()
