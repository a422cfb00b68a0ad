"""Run the real `assetd run` as a subprocess with a test NOTIFY_SOCKET, and read its catalog."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from helpers import wait_until


class NotifySocket:
    """A datagram socket standing in for systemd's; collects every message with the pid that
    sent it (``SO_PASSCRED``, as systemd does), so a restarted daemon's ``READY=1`` is told apart
    from the one its predecessor sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self.senders: list[int | None] = []  # the pid of each message (None: not known)
        self.times: list[tuple[float, str]] = []  # (monotonic arrival, message)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = None
            for level, kind, cdata in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            text = data.decode()
            self.senders.append(pid)  # before the message: a reader never sees one unpaired
            self.times.append((time.monotonic(), text))
            self.messages.append(text)

    def has(self, line: str, pid: int | None = None) -> bool:
        """Whether a message holds ``line``; with ``pid``, a message that process sent."""
        return self.count(line, pid) > 0

    def count(self, line: str, pid: int | None = None) -> int:
        """How many messages hold ``line`` (sent by ``pid`` if given)."""
        found = 0
        for i, message in enumerate(list(self.messages)):
            if line in message.split("\n") and (pid is None or self.senders[i] == pid):
                found += 1
        return found

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


class Daemon:
    def __init__(
        self,
        tmp: Path,
        roots: dict[str, Path],
        extra: str = "",
        *,
        command: tuple[str, ...] | None = None,
        env: dict[str, str] | None = None,
        backend: str = "inotify",
        min_quiet_ms: int | None = None,
    ) -> None:
        """``command`` runs instead of ``python -m assetd`` (e.g. under setpriv), with ``env``
        instead of this process's environment."""
        self.tmp = tmp
        self.command = command or (sys.executable, "-m", "assetd")
        self.base_env = env
        self.state = tmp / "state"
        self.config = tmp / "assetd.toml"
        self.log_path = tmp / "daemon.log"
        self.roots = roots
        self.backend = backend
        self.min_quiet_ms = min_quiet_ms  # None: the adaptive window's default
        self.write_config(roots, extra)
        self.notify: NotifySocket | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.state / "catalog.db"

    def write_config(self, roots: dict[str, Path], extra: str = "") -> None:
        watch = f'[watch]\nquiet_ms = 20\nbackend = "{self.backend}"\n'
        if self.min_quiet_ms is not None:
            watch += f"min_quiet_ms = {self.min_quiet_ms}\n"
        lines = [f'[daemon]\nstate_dir = "{self.state}"\n', watch, extra]
        for name, path in roots.items():
            lines.append(f'[[roots]]\nname = "{name}"\npath = "{path}"\ntags = ["{name}"]\n')
        self.config.write_text("\n".join(lines))

    def start(self, wait_ready: bool = True, env: dict[str, str] | None = None) -> Daemon:
        """Start ``assetd run``; ``env`` adds variables (``ASSETD_*`` ones too)."""
        if self.notify is None:
            self.notify = NotifySocket(self.tmp / "notify.sock")
        base = self.base_env if self.base_env is not None else os.environ
        environ = {k: v for k, v in base.items() if not k.startswith("ASSETD_")}
        environ["NOTIFY_SOCKET"] = str(self.notify.path)
        environ["PYTHONUNBUFFERED"] = "1"
        environ.update(env or {})
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*self.command, "run", "--config", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=environ,
        )
        if wait_ready:
            notify, proc = self.notify, self.proc
            wait_until(  # this process's READY=1, not the one a killed predecessor sent
                lambda: notify.has("READY=1", proc.pid) or proc.poll() is not None,
                30,
                what="READY=1",
            )
            assert proc.poll() is None, self.log_text()
        return self

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._log.close()
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        if self.notify is not None:
            self.notify.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_events(self) -> list[dict[str, object]]:
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    # --- the catalog, read as another program would ----------------------------------------

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        if not self.db.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def row(self, path: Path) -> tuple[object, ...] | None:
        rows = self.query(
            "SELECT is_missing, state_reason, id, asset_id FROM asset_cache_states "
            "WHERE file_path = ?",
            str(path),
        )
        return rows[0] if rows else None

    def is_live(self, path: Path) -> bool:
        r = self.row(path)
        return r is not None and r[0] == 0

    def is_missing(self, path: Path) -> bool:
        r = self.row(path)
        return r is not None and r[0] == 1

    def tags(self, path: Path) -> set[str]:
        rows = self.query(
            "SELECT t.tag_name FROM asset_info_tags t JOIN asset_infos i ON i.id = t.asset_info_id "
            "JOIN asset_cache_states c ON c.asset_id = i.asset_id WHERE c.file_path = ?",
            str(path),
        )
        return {str(r[0]) for r in rows}

    def add_manual_tag(self, path: Path, tag: str) -> None:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            with conn:
                (info,) = conn.execute(
                    "SELECT i.id FROM asset_infos i JOIN asset_cache_states c "
                    "ON c.asset_id = i.asset_id WHERE c.file_path = ?",
                    (str(path),),
                ).fetchone()
                conn.execute("INSERT OR IGNORE INTO tags (name) VALUES (?)", (tag,))
                conn.execute(
                    "INSERT INTO asset_info_tags (asset_info_id, tag_name) VALUES (?, ?)",
                    (info, tag),
                )
        finally:
            conn.close()

    def barrier(self, root: Path, name: str = ".barrier") -> None:
        """Everything done before this call has been applied once the sentinel is catalogued."""
        sentinel = root / f"{name}-{os.urandom(4).hex()}"
        sentinel.write_bytes(b"b")
        wait_until(lambda: self.is_live(sentinel), 15, what=f"barrier {sentinel}")
