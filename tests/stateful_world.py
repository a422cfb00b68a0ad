"""The world of the model-based test (tests/test_stateful_daemon.py): roots on disk, the real
daemon run as ``nobody``, and the catalog read (and tagged) as another program would.

Nothing here decides what should be true; it does things and reads facts. The model and the
invariant live in the test module.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import blake3

from daemon_harness import Daemon, NotifySocket
from helpers import wait_until
from unprivileged import Nobody, give_to_nobody

T = TypeVar("T")

POLL = 0.02  # the barrier looks at the catalog every 20 ms
ALWAYS_IGNORED = ("*.tmp", "*.part", ".Trash-*", "@eaDir", "#recycle")
TOGGLED = "*.skip"  # ignored or not, as SIGHUP reloads change the list


def poll(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """``predicate``'s first truthy value, polled every :data:`POLL` s, or :class:`Timeout`."""
    return wait_until(predicate, timeout, POLL, what)


def blake3_of(path: Path) -> str:
    return "blake3:" + blake3.blake3(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Row:
    id: int
    asset_id: int
    root: str
    path: str
    size: int
    mtime_ns: int
    missing: bool
    needs_verify: bool
    hash: str | None


class World:
    """Roots ``r0``.. under ``base``, the daemon's state and config beside them."""

    def __init__(self, nb: Nobody, base: Path, nroots: int, quiet_ms: int = 10) -> None:
        base.mkdir(mode=0o755)
        os.chmod(base, 0o755)
        self.base = base
        self.roots = {f"r{i}": base / f"r{i}" for i in range(nroots)}
        for path in self.roots.values():
            path.mkdir(mode=0o755)
        self.quiet_ms = quiet_ms
        self.daemon = Daemon(base, self.roots, command=nb.command, env=nb.env)
        self.write_config(skip_ignored=True)
        self.daemon.state.mkdir(mode=0o750)
        give_to_nobody(self.daemon.state)
        self.daemon.notify = NotifySocket(base / "notify.sock")
        os.chmod(self.daemon.notify.path, 0o777)  # nobody sends READY=1 to it
        self.sentinels = 0
        self.starts = 0

    # --- the daemon ------------------------------------------------------------------------

    def write_config(self, *, skip_ignored: bool) -> None:
        ignore = [*ALWAYS_IGNORED, *([TOGGLED] if skip_ignored else [])]
        lines = [
            f'[daemon]\nstate_dir = "{self.daemon.state}"\n',
            f"[watch]\nquiet_ms = {self.quiet_ms}\nmax_delay_ms = 200\nignore = {ignore!r}\n",
            "[api]\nlisten = []\n",
        ]
        for name, path in self.roots.items():
            lines.append(f'[[roots]]\nname = "{name}"\npath = "{path}"\n')
        self.daemon.config.write_text("\n".join(lines).replace("'", '"'))

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def start(self) -> None:
        self.daemon.start()
        self.starts += 1

    def kill(self) -> None:
        assert self.daemon.stop(signal.SIGKILL) == -signal.SIGKILL

    def term(self) -> None:
        code = self.daemon.stop(signal.SIGTERM)
        assert code == 0, f"SIGTERM exit {code}\n{self.daemon.log_text()[-3000:]}"

    def reload(self) -> bool:
        """SIGHUP, then wait for the READY=1 that ends the reload; whether it was applied
        (``config.reloaded``: a reload that fails keeps the running configuration)."""
        assert self.daemon.notify is not None
        applied = self.daemon.log_text().count('"config.reloaded"')
        before = self.daemon.notify.count("READY=1", self.pid)
        self.daemon.send(signal.SIGHUP)
        notify, pid = self.daemon.notify, self.pid
        poll(lambda: notify.count("READY=1", pid) > before, 20, "READY=1 after SIGHUP")
        return self.daemon.log_text().count('"config.reloaded"') > applied

    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    # --- the catalog, read and written as another program would ------------------------------

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.daemon.db}?mode=ro", uri=True, timeout=10)

    def rows(self, conn: sqlite3.Connection | None = None) -> list[Row]:
        own = conn is None
        conn = conn or self.connect()
        try:
            found = conn.execute(
                "SELECT c.id, c.asset_id, r.name, c.file_path, c.size_bytes, c.mtime_ns, "
                "c.is_missing, c.needs_verify, a.hash FROM asset_cache_states c "
                "JOIN roots r ON r.id = c.root_id JOIN assets a ON a.id = c.asset_id"
            ).fetchall()
        finally:
            if own:
                conn.close()
        return [
            Row(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), bool(r[7]), r[8]) for r in found
        ]

    def live(self, paths: list[Path]) -> bool:
        """Whether every path has a live row."""
        conn = self.connect()
        try:
            for path in paths:
                got = conn.execute(
                    "SELECT is_missing FROM asset_cache_states WHERE file_path = ?", (str(path),)
                ).fetchone()
                if got is None or got[0]:
                    return False
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()

    def barrier(self, roots: list[str], timeout: float = 15.0) -> None:
        """A sentinel file in each of ``roots``, then wait until all are catalogued: whatever
        was done in those roots before is applied (DESIGN §8)."""
        made = []
        for name in roots:
            self.sentinels += 1
            path = self.roots[name] / f"zz-sentinel-{self.sentinels}"
            path.write_bytes(b"s")
            made.append(path)
        poll(lambda: self.live(made), timeout, f"sentinels {[str(p) for p in made]}")

    def add_manual_tag(self, path: Path, tag: str) -> bool:
        """Put a manual tag on the info of the asset ``path``'s row points at, in one write
        transaction (so the row cannot move under the insert). False if there is no live row
        with an info."""
        conn = sqlite3.connect(self.daemon.db, timeout=10, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            got = conn.execute(
                "SELECT i.id FROM asset_cache_states c JOIN asset_infos i "
                "ON i.asset_id = c.asset_id WHERE c.file_path = ? AND c.is_missing = 0 "
                "ORDER BY i.id LIMIT 1",
                (str(path),),
            ).fetchone()
            if got is None:
                conn.execute("ROLLBACK")
                return False
            conn.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (tag,))
            conn.execute(
                "INSERT INTO asset_info_tags (asset_info_id, tag_name, origin) "
                "VALUES (?, ?, 'manual')",
                (got[0], tag),
            )
            conn.execute("COMMIT")
            return True
        finally:
            conn.close()

    def manual_tags(self, conn: sqlite3.Connection) -> dict[str, set[str]]:
        """Each manual tag -> the paths (live or missing rows) it is reachable from."""
        out: dict[str, set[str]] = {}
        for tag, path in conn.execute(
            "SELECT t.tag_name, c.file_path FROM asset_info_tags t "
            "JOIN asset_infos i ON i.id = t.asset_info_id "
            "LEFT JOIN asset_cache_states c ON c.asset_id = i.asset_id "
            "WHERE t.origin = 'manual'"
        ):
            out.setdefault(tag, set())
            if path is not None:
                out[tag].add(path)
        return out

    def file_moves(self, conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
        """The catalog's move history of files, oldest first, as (from, to, how)."""
        return conn.execute(
            "SELECT from_path, to_path, how FROM asset_moves WHERE is_dir = 0 ORDER BY id"
        ).fetchall()


def walk_files(top: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under ``top`` (the test runs as root: modes do not stop it)."""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            path = Path(dirpath) / name
            yield path, path.lstat()


def walk_dirs(top: Path) -> list[Path]:
    return [Path(d) for d, _dirs, _files in os.walk(top)]
