"""Reading a walk's next directories in worker processes: ``stat`` on both cores.

Read-ahead threads (:mod:`assetd.walk_ahead`) overlap little: each ``stat`` lets go of the GIL
for a microsecond or two, then waits to take it back from the walk's thread, which holds it
(CPython hands it over every ``sys.getswitchinterval()``, 5 ms). A worker process has a GIL of
its own: it lists and stats a directory with the same :func:`assetd.walk_dir.read_dir` and
sends the segments back pickled, which the walk's thread unpickles for a fraction of what
building them costs.

A worker is ``python -S`` importing this module only (the parent's ``sys.path`` handed over),
spoken to over its stdin and stdout in frames (a 4-byte length, then a pickle): first the walk's
:class:`~assetd.walk_dir.How`, then one directory per request; it answers each request, in
order, with the directory's segments. It ends at the end of its stdin (the walk closed it, or
the walk's process died). Workers live as long as one walk.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import struct
import subprocess
import sys
import urllib.parse
from collections import deque
from typing import Any

from assetd.walk_dir import DISK_ROW_COLUMNS, DiskRow, How, Same, Segment, Sub, read_dir

_LEN = struct.Struct("<I")
_SERVE = "from assetd.walk_procs import serve; serve()"
BUSY_TIMEOUT_S = 5.0  # as the catalog's own connections (assetd.catalog.lite)


def _read_exact(fd: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Any:
    (n,) = _LEN.unpack(_read_exact(fd, 4))
    return pickle.loads(_read_exact(fd, n))


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def serve() -> None:
    """A worker's loop (run by the worker process): read ``How``, then answer each request."""
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    con: sqlite3.Connection | None = None
    try:
        how: How = _read_frame(fd_in)
        if how.catalog is not None:
            con = _open_catalog(how.catalog[0])
        while True:
            os_path, prefix, raw = _read_frame(fd_in)
            segs = read_dir(os_path, prefix, raw, how, by_fd=how.by_fd)
            if con is not None and how.catalog is not None:
                segs = vouch(segs, prefix, con, how.catalog[1])
            _write_all(fd_out, _frame(segs))
    except EOFError:
        return
    finally:
        if con is not None:
            con.close()


_ROWS_SQL = (  # one stretch, as reconcile's pages read it
    f"SELECT {DISK_ROW_COLUMNS} FROM asset_cache_states WHERE root_id = ? AND file_path >= ? "
    "AND file_path < ? ORDER BY file_path LIMIT ?"
)


def _open_catalog(db: str) -> sqlite3.Connection | None:
    """The catalog file, read-only, autocommit (each SELECT its own short read); None if it
    cannot be opened (the worker then compares nothing: the walk's thread merges it all)."""
    try:
        uri = "file:" + urllib.parse.quote(db) + "?mode=ro"
        return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error:
        return None


def vouch(segs: list[Segment], prefix: str, con: sqlite3.Connection, root_id: int) -> list[Segment]:
    """``segs`` (of the directory whose catalog path + "/" is ``prefix``) with each stretch
    between two subdirectories (or the directory's start or end) whose files equal the
    catalog's rows in that key range, field for field, replaced by one :class:`Same` (its
    problems kept, in order). A subdirectory's rows lie in ``[sub/, sub0)`` (every path below
    it starts with "sub/"; "0" follows "/"), outside the stretches, so any other row in a
    stretch (a file gone, a directory gone, an already-missing row) makes it differ; a
    stretch that differs, or that the catalog cannot be read for, is left as listed."""
    out: list[Segment] = []
    stretch: list[Segment] = []
    files: list[DiskRow] = []
    low = prefix

    def close(high: str) -> None:
        try:
            cursor = con.execute(_ROWS_SQL, (root_id, low, high, len(files) + 1))
            rows = cursor.fetchall()
            cursor.close()
        except sqlite3.Error:
            rows = None
        if rows == files:
            out.append(Same(low, high, len(files)))
            out.extend(seg for seg in stretch if not isinstance(seg, list))
        else:
            out.extend(stretch)

    for seg in segs:
        if isinstance(seg, Sub):
            close(seg.prefix)
            out.append(seg)
            low, stretch, files = seg.prefix[:-1] + "0", [], []
        else:
            stretch.append(seg)
            if isinstance(seg, list):
                files += seg
    close(prefix[:-1] + "0")
    return out


class WorkerGone(Exception):
    """A worker ended or broke its stream; the walk reads the rest itself."""


class _Worker:
    def __init__(self, how_frame: bytes) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _SERVE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.fd_in, self.fd_out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        self.waiting: deque[_Pending] = deque()  # sent, not yet answered, in order
        _write_all(self.fd_in, how_frame)

    def send(self, pending: _Pending) -> None:
        sub = pending.sub
        _write_all(self.fd_in, _frame((sub.os_path, sub.prefix, sub.raw)))
        self.waiting.append(pending)

    def answer(self) -> None:
        """Read the answer to the oldest request."""
        pending = self.waiting.popleft()
        try:
            pending.value = _read_frame(self.fd_out)
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            raise WorkerGone(str(exc)) from exc
        pending.done = True

    def close(self) -> None:
        """End the worker now (it holds nothing to save; a listing under way ends with it) and
        reap it. ``wait`` without a timeout: with one, ``Popen`` polls in sleeps."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.kill()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait()


class _Pending:
    __slots__ = ("cancelled", "done", "pool", "sub", "value", "worker")

    def __init__(self, pool: Processes, sub: Sub, worker: _Worker | None) -> None:
        self.pool, self.sub, self.worker = pool, sub, worker
        self.value: list[Segment] = []
        self.done = self.cancelled = False

    def result(self) -> list[Segment]:
        while not self.done:
            worker = self.worker
            if worker is None or self.pool.broken:  # read it here
                self.value, self.done = self.pool.read(self.sub), True
                break
            try:
                worker.answer()
            except WorkerGone:
                self.pool.breaks()
        return self.value

    def cancel(self) -> bool:
        self.cancelled = True  # its answer is still read (in order) and dropped
        return False


class Processes:
    """``workers`` worker processes reading directories for one walk (the ``pool`` of a
    :class:`~assetd.walk_ahead.ReadAhead`): :meth:`submit` sends a directory to the worker with
    the fewest waiting; ``result()`` of what it returns reads the answer. If a worker breaks
    (it died, its stream is cut), every directory not yet answered is read in this process
    with ``how``, and no worker is used again. With no workers, each directory is read here
    when the walk asks for it."""

    def __init__(self, how: How, workers: int) -> None:
        self.how = how
        self.broken = False
        frame = _frame(how)
        self._workers: list[_Worker] = []
        try:
            for _ in range(workers):
                self._workers.append(_Worker(frame))
        except OSError:
            self.breaks()

    def read(self, sub: Sub) -> list[Segment]:
        return read_dir(sub.os_path, sub.prefix, sub.raw, self.how, by_fd=self.how.by_fd)

    def submit(self, sub: Sub) -> _Pending:
        if self.broken or not self._workers:
            return _Pending(self, sub, None)
        worker = min(self._workers, key=lambda w: len(w.waiting))
        pending = _Pending(self, sub, worker)
        try:
            worker.send(pending)
        except OSError:
            self.breaks()
            pending.worker = None
        return pending

    def breaks(self) -> None:
        """Stop using the workers: what they were asked and did not answer is read here."""
        self.broken = True
        self.shutdown()

    def shutdown(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()


def idle_cores() -> int:
    """Cores no other task wants: the CPUs less the tasks runnable this instant
    (``/proc/loadavg``'s fourth field, less this thread), and 0 while the one-minute load
    average says the machine has been busy (more than this walk and half a core). Workers pay
    off only on a core nobody else wants: on a busy machine they cost the walk time and CPU,
    and it reads each directory itself (``bench/scan_bench.py --readers``, docs/benchmarks.md)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            fields = f.read().split()
        load, runnable = float(fields[0]), int(fields[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    cpus = os.cpu_count() or 1
    if load > cpus - 0.5:
        return 0
    return cpus - max(runnable - 1, 0) - 1


def picklable(how: How) -> bool:
    """Whether ``how`` can be handed to a worker (a test's seams, a closure, cannot)."""
    try:
        pickle.dumps(how, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True
