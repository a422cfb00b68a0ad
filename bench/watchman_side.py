"""Watchman beside assetd in the benchmarks: an isolated server, spoken to in JSON over its socket.

Debian's ``watchman`` (4.9) is installed with apt-get when it is missing (here only, never in the
tests). :class:`Watchman` runs it in the foreground with a socket, state file, log file, pid file
and ``TMPDIR`` of its own under a work directory and an empty ``WATCHMAN_CONFIG_FILE``, so it shares
nothing with any other watchman on the machine. A reader thread takes every line the server sends:
answers go to one queue, subscription pushes (``unilateral``) to another, each stamped with
``time.perf_counter()`` when it was read. ``stop()`` sends ``shutdown-server``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Push", "Watchman", "ensure_watchman"]


def ensure_watchman() -> str:
    """The path of ``watchman``; installs Debian's package first when it is missing."""
    found = shutil.which("watchman")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "watchman"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = shutil.which("watchman")
    if not found:
        raise SystemExit("apt-get installed watchman but it is not on PATH")
    return found


@dataclass(frozen=True, slots=True)
class Push:
    """One subscription push: when it was read, and its files as (name, exists)."""

    at: float
    files: tuple[tuple[str, bool], ...]
    fresh: bool


class Watchman:
    """One isolated watchman server under ``work``."""

    def __init__(self, work: str) -> None:
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.sock_path = os.path.join(work, "sock")
        self.tmp = os.path.join(work, "tmp")
        os.makedirs(self.tmp, exist_ok=True)
        self.config_file = os.path.join(work, "empty.json")
        with open(self.config_file, "w", encoding="utf-8") as f:
            f.write("{}\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pushes: queue.Queue[Push] = queue.Queue()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        binary = ensure_watchman()
        env = {**os.environ, "WATCHMAN_CONFIG_FILE": self.config_file, "TMPDIR": self.tmp}
        with open(os.path.join(self.work, "stdout.log"), "ab") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--foreground",
                    f"--sockname={self.sock_path}",
                    f"--statefile={os.path.join(self.work, 'state')}",
                    f"--logfile={os.path.join(self.work, 'log')}",
                    f"--pidfile={os.path.join(self.work, 'pid')}",
                    "--log-level=1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"watchman exited with {self.proc.returncode} (see {self.work})")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.sock_path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise SystemExit("watchman's socket did not appear") from None
                time.sleep(0.05)
        self.sock = sock
        self._reader = threading.Thread(target=self._read, name="watchman-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.sock is not None
        buf = b""
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            now = time.perf_counter()
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if not line.strip():
                    continue
                pdu = json.loads(line)
                if "subscription" in pdu and "subscribe" not in pdu:  # 4.9: no "unilateral"
                    files = tuple((str(f["name"]), bool(f["exists"])) for f in pdu.get("files", []))
                    self.pushes.put(Push(now, files, bool(pdu.get("is_fresh_instance"))))
                elif not pdu.get("unilateral") and "log" not in pdu:
                    self.answers.put(pdu)

    def call(self, *command: Any, timeout: float = 120.0) -> dict[str, Any]:
        """Send one command (a JSON array) and return its answer; an error answer raises."""
        assert self.sock is not None
        self.sock.sendall(json.dumps(list(command)).encode() + b"\n")
        answer = self.answers.get(timeout=timeout)
        if "error" in answer:
            raise SystemExit(f"watchman {command[0]}: {answer['error']}")
        return answer

    def watch(self, root: str, timeout: float = 600.0) -> float:
        """``watch`` ``root`` and wait until its crawl is done; returns the seconds it took."""
        t0 = time.perf_counter()
        self.call("watch", root, timeout=timeout)
        self.call("clock", root, {"sync_timeout": int(timeout * 1000)}, timeout=timeout)
        return time.perf_counter() - t0

    def subscribe(self, root: str, name: str, timeout: float = 600.0) -> None:
        """Subscribe to ``name`` and ``exists`` of every change; the initial push is dropped."""
        self.call("subscribe", root, name, {"fields": ["name", "exists"]}, timeout=timeout)
        try:  # a root with files gets them all in a first push; an empty one gets none
            first = self.pushes.get(timeout=2.0)
        except queue.Empty:
            return
        if not first.fresh:
            self.pushes.put(first)

    def drain(self) -> list[Push]:
        out = []
        while True:
            try:
                out.append(self.pushes.get_nowait())
            except queue.Empty:
                return out

    def cpu_seconds(self) -> float:
        clk = os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as f:
            text = f.read()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / clk

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(SystemExit, queue.Empty, OSError):
                self.call("shutdown-server", timeout=10)
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
