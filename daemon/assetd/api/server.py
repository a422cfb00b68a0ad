"""uvicorn on the API thread's own event loop: one server per listen address.

The daemon's main thread keeps the signals (``capture_signals`` is a no-op here) and the stop
order (:meth:`ApiServer.request_stop` sets ``should_exit``; the caller joins with a bound).
Sockets are bound here, not by uvicorn, so that a unix socket is created 0660 in the state
directory's group, a stale one left by a crash is replaced, and an address that cannot be bound
(in use, no permission) is logged once as ``api.unavailable`` and retried every
``RETRY_EVERY`` seconds while the other addresses, and the catalog's work, go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Generator
from typing import TYPE_CHECKING

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from assetd import log
from assetd.api.app import create_app
from assetd.api.context import ApiContext
from assetd.api.events import RESET, EventRing
from assetd.catalog.api_assets import info_ids_for_paths
from assetd.catalog.engine import make_engine, one_line, session_factory
from assetd.config_parse import UNIX_PATH_MAX, ListenAddress
from assetd.faults import api_retry_every

if TYPE_CHECKING:
    from assetd.api.runtime import ApiRuntime

_log = log.get_logger(__name__)

RETRY_EVERY = 30.0
SOCKET_MODE = 0o660
GRACEFUL_S = 1


class _GuestServer(uvicorn.Server):
    """uvicorn without signal handlers: the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn releases
        return


class _Incomplete(logging.Filter):
    """A dropped event client ends its response early, on purpose: not uvicorn's error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def bind(address: ListenAddress) -> socket.socket:
    """A listening socket for ``address``; OSError (with a readable strerror) if it cannot be."""
    if address.is_unix:
        return _bind_unix(address.path)
    infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _bind_unix(path: str) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:  # nobody listens: a socket left by a crash
            os.unlink(path)
        else:
            raise OSError(errno.EADDRINUSE, f"another process serves {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bound under a temporary name, given its mode, then renamed into place: the socket is
    # never reachable at ``path`` with the wider mode bind() gives it under a permissive umask
    # (a path too long for the temporary name is bound in place: its directory is 0750)
    tmp = os.path.join(os.path.dirname(path), f".sock-{os.getpid()}")
    if len(os.fsencode(tmp)) > UNIX_PATH_MAX:
        tmp = path
    try:
        if tmp != path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        sock.bind(tmp)
        os.chmod(tmp, SOCKET_MODE)
        with contextlib.suppress(OSError):  # the state directory's group may read the catalog
            os.chown(tmp, -1, os.stat(os.path.dirname(path)).st_gid)
        if tmp != path:
            os.rename(tmp, path)
        sock.listen(128)
    except OSError:
        sock.close()
        if tmp != path:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    sock.setblocking(False)
    return sock


class ApiServer:
    def __init__(self, runtime: ApiRuntime) -> None:
        catalog = runtime.daemon.catalog
        assert catalog is not None
        self.runtime = runtime
        self.engine = make_engine(catalog.url, readonly=True)
        self.ctx = ApiContext(runtime, session_factory(self.engine), EventRing())
        self.app = create_app(self.ctx)
        self.servers: list[_GuestServer] = []
        self.sockets: dict[str, socket.socket] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        logging.getLogger("uvicorn.error").addFilter(_Incomplete())
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            self.runtime.events.attach(None)
            for address, sock in self.sockets.items():
                sock.close()
                if address.startswith("unix:"):
                    path = next(a.path for a in self.runtime.addresses if a.text == address)
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            self.engine.dispose()

    def request_stop(self) -> None:
        """Thread-safe: end every server and stream."""
        loop, stopping = self.loop, self.stopping
        for server in self.servers:
            server.should_exit = True
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        wake = asyncio.Event()
        wake.set()  # what the daemon published before the loop ran
        loop = self.loop

        def wake_up() -> None:  # called from the daemon's threads
            loop.call_soon_threadsafe(wake.set)

        self.runtime.events.attach(wake_up)
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_S,
            timeout_keep_alive=30,
        )
        tasks = [asyncio.create_task(self._pump(wake))]
        tasks += [asyncio.create_task(self._serve(config, a)) for a in self.runtime.addresses]
        await self.stopping.wait()
        wake.set()  # the pump ends
        self.ctx.closing = True
        self.ctx.ring.close()
        for server in self.servers:
            server.should_exit = True
        await asyncio.wait(tasks, timeout=GRACEFUL_S + 2)
        for task in tasks:
            task.cancel()

    async def _serve(self, config: uvicorn.Config, address: ListenAddress) -> None:
        """Bind (retrying every RETRY_EVERY s, logged once), then serve until stopped."""
        assert self.stopping is not None
        logged = False
        every = api_retry_every(RETRY_EVERY)  # 30 s; a test's hook may shorten it
        while not self.stopping.is_set():
            try:
                sock = bind(address)
            except OSError as err:
                reason = err.strerror or str(err)
                self.runtime.listening[address.text] = reason
                if not logged:
                    _log.error(
                        "api.unavailable",
                        address=address.text,
                        reason=reason,
                        action=f"retrying every {every:g} s; the catalog's work goes on",
                    )
                    self.runtime.write_status()
                    logged = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), every)
                continue
            self.sockets[address.text] = sock
            self.runtime.listening[address.text] = None
            self.runtime.write_status()
            _log.info("api.listening", address=address.text, retried=logged)
            server = _GuestServer(config)
            self.servers.append(server)
            await server.serve(sockets=[sock])
            return

    async def _pump(self, wake: asyncio.Event) -> None:
        """Raw events from the daemon's threads -> info ids -> numbered events on the ring."""
        assert self.stopping is not None
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            await wake.wait()
            wake.clear()
            raw, lost = self.runtime.events.drain()
            paths = sorted({p for e in raw for p in e.paths})
            ids: dict[str, list[int]] | None = {}
            if paths:
                ids = await loop.run_in_executor(None, self._lookup, paths)
            if lost:
                self.ctx.ring.publish(RESET, {"reason": "events were lost: re-list"})
            for event in raw:
                data = dict(event.data)
                if event.paths:
                    data["paths"] = list(event.paths)
                    data["asset_info_ids"] = (
                        sorted({i for p in event.paths for i in ids.get(p, [])})
                        if ids is not None
                        else None
                    )
                self.ctx.ring.publish(event.name, data)
            if raw:
                self.ctx.totals.clear()

    def _lookup(self, paths: list[str]) -> dict[str, list[int]] | None:
        try:
            with self.ctx.read_sessions() as s:
                return info_ids_for_paths(s, paths)
        except SQLAlchemyError as err:
            _log.debug("api.lookup_failed", error=one_line(err))
            return None
