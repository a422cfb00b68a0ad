"""Large files hashed with ``update_mmap`` in a child process, so a truncation cannot kill us.

A file truncated while it is memory-mapped raises SIGBUS in the process reading the mapping,
which no Python code can catch (measured: blake3's ``update_mmap`` of a file truncated
mid-read ends the process with signal 7). Here that process is a small child; the parent reads
the signal as "the file changed while it was read" and starts a new child for the next file.

The child runs ``python -m assetd.hashing.child``. It inherits the niceness and I/O priority of the
thread that starts it (and so do blake3's worker threads inside it). Protocol on its stdin and
stdout: a request is a 4-byte big-endian length and the path's bytes; a reply is one ASCII
line, ``ok <hex>`` or ``err <errno> <message>``. EOF on stdin ends it.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import threading
from typing import BinaryIO

_HEADER = struct.Struct(">I")
DIGEST_PREFIX = "blake3:"


class FileChangedError(Exception):
    """The file changed (was truncated, grew or shrank) while it was being read."""


class HashInterrupted(Exception):
    """The hasher was closed while a file was being hashed."""


class HashChildError(Exception):
    """The child process failed for a reason other than the file changing."""


def _serve(inp: BinaryIO, out: BinaryIO) -> int:
    import blake3

    while True:
        head = inp.read(_HEADER.size)
        if len(head) < _HEADER.size:
            return 0
        (length,) = _HEADER.unpack(head)
        path = os.fsdecode(inp.read(length))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # never a symlink
            try:
                hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
                hasher.update_mmap(f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
            reply = f"ok {hasher.hexdigest()}\n"
        except OSError as err:
            message = (err.strerror or str(err)).replace("\n", " ")
            reply = f"err {err.errno or 0} {message}\n"
        except Exception as err:
            reply = f"err 0 {type(err).__name__}: {err}".replace("\n", " ") + "\n"
        out.write(reply.encode("ascii", "backslashreplace"))
        out.flush()


class ChildHasher:
    """``hasher(path) -> "blake3:<hex>"`` through one persistent child process.

    Raises :class:`FileChangedError` if the child died of SIGBUS (the file shrank under the
    mapping), ``OSError`` for what the child could not open, :class:`HashInterrupted` after
    :meth:`close` (which also ends a hash in progress: a stop never waits for a 100 GB file).
    One call at a time; each worker thread has its own.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._call = threading.Lock()  # one request at a time
        self._guard = threading.Lock()  # start vs close
        self._closed = False

    def _start(self) -> subprocess.Popen[bytes]:
        with self._guard:
            if self._closed:
                raise HashInterrupted
            if self._proc is None:
                env = dict(os.environ)
                package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (package_parent, env.get("PYTHONPATH", "")) if p
                )
                self._proc = subprocess.Popen(
                    [sys.executable, "-m", "assetd.hashing.child"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,  # a failure shows as its exit status, logged
                    env=env,
                    close_fds=True,
                )
            return self._proc

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    def __call__(self, path: str) -> str:
        with self._call:
            proc = self._start()
            assert proc.stdin is not None and proc.stdout is not None
            data = os.fsencode(path)
            try:
                proc.stdin.write(_HEADER.pack(len(data)) + data)
                proc.stdin.flush()
                line = proc.stdout.readline()
            except OSError:  # BrokenPipeError: the child is gone
                line = b""
            if not line:
                self._reap(proc)
            return self._parse(line.decode("ascii").rstrip("\n"), path)

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        with self._guard:
            if self._proc is proc:
                self._proc = None
            closed = self._closed
        if closed:
            raise HashInterrupted
        if code == -signal.SIGBUS:
            raise FileChangedError("the file shrank while it was memory-mapped")
        raise HashChildError(f"hash child process exited with {code}")

    @staticmethod
    def _parse(line: str, path: str) -> str:
        kind, _, rest = line.partition(" ")
        if kind == "ok":
            return DIGEST_PREFIX + rest
        code, _, message = rest.partition(" ")
        if code.isdigit() and int(code):
            raise OSError(int(code), message, path)
        raise HashChildError(message or line)

    def close(self) -> None:
        """End the child (a hash in progress ends with :class:`HashInterrupted`)."""
        with self._guard:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None and self._call.acquire(timeout=1.0):  # no read in progress
            try:
                proc.stdout.close()
            finally:
                self._call.release()

    def __enter__(self) -> ChildHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(_serve(sys.stdin.buffer, sys.stdout.buffer))
