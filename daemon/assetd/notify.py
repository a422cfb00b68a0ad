"""sd_notify without a dependency: datagrams to ``$NOTIFY_SOCKET`` (DESIGN §6).

The protocol is newline-separated ``KEY=value`` assignments in one datagram on an ``AF_UNIX``
``SOCK_DGRAM`` socket; an address starting with ``@`` is in the abstract namespace. Without a
socket (not started by systemd, or ``NotifyAccess`` denies it) every call is a no-op, and a send
that fails is logged at debug and forgotten: notification never stops the daemon. The socket is
non-blocking: when the manager does not read (its queue is full) a message is dropped with a
``notify.dropped`` debug line instead of blocking the caller, so a SIGTERM is still acted on.

The service sends ``READY=1`` once observers run and the start-up reconcile is under way,
``RELOADING=1`` then ``READY=1`` around a reload, ``STOPPING=1`` on SIGTERM, ``STATUS=`` now and
then, ``EXTEND_TIMEOUT_USEC`` while a long start-up lasts, and ``WATCHDOG=1`` every main-loop tick
(at most half of ``watchdog_interval()``) while the canary proves events flow.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping

from assetd.log import get_logger

__all__ = ["Notifier", "watchdog_interval"]

log = get_logger(__name__)


def _address(raw: str) -> str | None:
    """The socket address for ``$NOTIFY_SOCKET``; None for an unusable one."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # e.g. systemd 254's vsock:CID:PORT, which this daemon does not speak


def _line(key: str, value: object) -> str:
    text = str(int(value)) if isinstance(value, bool) else str(value)
    return f"{key}={' '.join(text.splitlines())}"  # one assignment per line, whatever the text


class Notifier:
    """Talks to the service manager; safe to call from any thread.

    ``env`` is read once (default ``os.environ``); ``NOTIFY_SOCKET`` selects the socket.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        raw = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.debug("notify.unsupported_socket", address=raw)
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self._address is not None

    def send(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines in one datagram (``send(READY=1, STATUS="...")``);
        True when it was sent. A bool is sent as 1/0; newlines in a value become spaces."""
        if self._address is None or not fields:
            return False
        payload = "\n".join(_line(k, v) for k, v in fields.items()).encode("utf-8", "replace")
        try:
            with self._lock:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX,
                        socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK,
                    )
                self._socket.sendto(payload, self._address)
        except BlockingIOError:  # the manager does not read: never wait for it
            log.debug("notify.dropped", reason="notify socket full", fields=sorted(fields))
            return False
        except OSError as err:
            log.debug("notify.failed", error=str(err), fields=sorted(fields))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (CLOCK_MONOTONIC, as systemd >= 253 wants);
        send :meth:`ready` when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before start-up (or stop) times out (``EXTEND_TIMEOUT_USEC``):
        starting observers on a huge tree can outlast ``TimeoutStartSec``."""
        return self.send(EXTEND_TIMEOUT_USEC=max(1, int(seconds * 1_000_000)))

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """systemd's watchdog timeout in seconds (``$WATCHDOG_USEC``), or None when it is off or
    meant for another process (``$WATCHDOG_PID`` set and not ours). Ping at half of it."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID", "")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None
