"""assetd.notify: the exact datagrams on a real AF_UNIX socket (path and abstract), no-ops."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from assetd.notify import Notifier, watchdog_interval


class Listener:
    """A bound SOCK_DGRAM socket standing in for systemd."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(5.0)  # a bounded wait: a datagram not sent fails the test

    def recv(self) -> str:
        return self.sock.recv(4096).decode("utf-8")

    def nothing_pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False


@pytest.fixture
def path_listener(tmp_path: Path) -> Iterator[tuple[Listener, str]]:
    address = str(tmp_path / "notify.sock")
    if len(address) >= 100:  # sun_path holds 108 bytes
        pytest.skip(f"tmp_path too long for an AF_UNIX address: {address}")
    listener = Listener(address)
    yield listener, address
    listener.sock.close()


@pytest.fixture
def abstract_listener() -> Iterator[tuple[Listener, str]]:
    name = f"assetd-test-{os.getpid()}-{uuid.uuid4().hex}"
    listener = Listener("\0" + name)
    yield listener, "@" + name
    listener.sock.close()


def test_each_message_is_one_exact_datagram(path_listener: tuple[Listener, str]) -> None:
    listener, address = path_listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready()
    assert listener.recv() == "READY=1"
    assert notifier.ready("3 roots watching")
    assert listener.recv() == "READY=1\nSTATUS=3 roots watching"
    assert notifier.status("batch\napplied")
    assert listener.recv() == "STATUS=batch applied"
    assert notifier.stopping()
    assert listener.recv() == "STOPPING=1"
    assert notifier.watchdog()
    assert listener.recv() == "WATCHDOG=1"
    assert notifier.extend_timeout(30)
    assert listener.recv() == "EXTEND_TIMEOUT_USEC=30000000"
    assert notifier.send(STATUS="x", ERRNO=5, READY=True)
    assert listener.recv() == "STATUS=x\nERRNO=5\nREADY=1"
    assert not notifier.send()
    assert listener.nothing_pending()
    notifier.close()


def test_reloading_carries_the_monotonic_clock(path_listener: tuple[Listener, str]) -> None:
    listener, address = path_listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = listener.recv().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC" and before <= int(value) <= after
    notifier.close()


def test_abstract_namespace_socket(abstract_listener: tuple[Listener, str]) -> None:
    listener, address = abstract_listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("up")
    assert listener.recv() == "READY=1\nSTATUS=up"
    notifier.close()


def test_no_socket_is_a_no_op() -> None:
    for env in ({}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}):
        notifier = Notifier(env)
        assert not notifier.enabled
        assert not notifier.ready()
        assert not notifier.reloading()
        assert not notifier.stopping()
        assert not notifier.status("x")
        assert not notifier.watchdog()
        notifier.close()


def test_a_send_error_is_swallowed_and_logged_at_debug(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.enabled
    with structlog.testing.capture_logs() as logs:
        assert not notifier.ready()
    assert [(e["event"], e["log_level"]) for e in logs] == [("notify.failed", "debug")]
    notifier.close()


def test_default_environment_is_read(
    monkeypatch: pytest.MonkeyPatch, path_listener: tuple[Listener, str]
) -> None:
    listener, address = path_listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = Notifier()
    assert notifier.watchdog()
    assert listener.recv() == "WATCHDOG=1"
    notifier.close()


def test_watchdog_interval() -> None:
    me = str(os.getpid())
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": me}) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "500000"}) == 0.5
