"""Test helpers: waiting on conditions with a deadline (never bare sleeps), small catalog views."""

from __future__ import annotations

import mmap
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    """What :func:`wait_until` raises when its deadline passes (a failed assertion)."""


def wait_until(
    predicate: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes (then fail with
    :class:`Timeout`)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what or predicate}")
        pause.wait(interval)


_SIGNAL = (
    "\nimport mmap\nwith open(sys.argv[-1], 'r+b') as f:\n    mmap.mmap(f.fileno(), 1)[0] = 1\n"
)


def run_starving_readers(child: str, *args: str, flag: Path) -> None:
    """Run ``child`` (Python source, given ``args`` then ``flag``) in another process while this
    thread keeps the GIL (a busy loop without a syscall, the switch interval at 60 s): no other
    thread of this process, a watcher's reader included, runs until the child has finished."""
    flag.write_bytes(b"\0")
    with open(flag, "r+b") as f, mmap.mmap(f.fileno(), 1) as done:
        proc = subprocess.Popen([sys.executable, "-c", child + _SIGNAL, *args, str(flag)])
        interval = sys.getswitchinterval()
        sys.setswitchinterval(60.0)
        try:
            deadline = time.monotonic() + 60
            while done[0] == 0 and time.monotonic() < deadline:
                pass
        finally:
            sys.setswitchinterval(interval)
        assert proc.wait(60) == 0 and done[0] == 1
