"""The test harness itself: a restarted daemon is ready only once *it* says so."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from daemon_harness import Daemon, NotifySocket
from helpers import wait_until

SEND = (
    "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
    "s.sendto(b'READY=1', os.environ['SOCK']); print(os.getpid())"
)


def _ready_messages(notify: NotifySocket) -> int:
    return sum("READY=1" in m.split("\n") for m in list(notify.messages))


def test_a_restarted_daemon_is_waited_for_until_its_own_ready(daemon: Daemon) -> None:
    """The old harness matched the killed predecessor's READY=1 and returned at once."""
    daemon.start()
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert daemon.notify is not None
    daemon.start()
    assert _ready_messages(daemon.notify) == 2
    assert daemon.stop() == 0


def test_notify_socket_tells_senders_apart(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "n.sock")
    try:
        env = {"SOCK": str(notify.path)}
        pids = []
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", SEND], env=env, capture_output=True)
            pids.append(int(out.stdout))
            wait_until(lambda: _ready_messages(notify) == len(pids), 5, what="message")
        assert notify.has("READY=1", pids[0]) and notify.has("READY=1", pids[1])
        assert not notify.has("READY=1", pids[1] + 100000)
        assert notify.count("READY=1") == 2
    finally:
        notify.close()
