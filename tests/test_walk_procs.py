"""The walk reading ahead in worker processes (issue 15: ``stat`` on both cores): the same files,
problems and order as the walk read in place, on a tree of odd entries; no worker outlives its
walk; a worker that dies mid-walk costs nothing but speed. And the read-ahead's order: a
directory's subdirectories are read ahead even while its later siblings fill the window."""

from __future__ import annotations

import os
import signal
import types
from pathlib import Path

import pytest

import assetd.walk as walk_mod
from assetd import walk_procs
from assetd.fsutil import FileStat, IgnoreRules
from assetd.links import LinkRules
from assetd.walk import WalkProblem, list_files_recursively
from assetd.walk_ahead import ReadAhead
from walk_tree import make_odd_tree, walk_odd_tree


class _Started:
    """Records the worker pools a walk starts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pools: list[walk_procs.Processes] = []
        real = walk_procs.Processes

        def make(*args: object) -> walk_procs.Processes:
            pool = real(*args)  # type: ignore[arg-type]
            self.pools.append(pool)
            return pool

        monkeypatch.setattr(walk_mod, "Processes", make)
        monkeypatch.setattr(walk_mod, "PROCESSES_AFTER", 0)
        monkeypatch.setattr(walk_mod, "idle_cores", lambda: 1)  # whatever else runs now


def _walk(top: Path, follow: bool, *, procs: int) -> tuple[list[FileStat], list[WalkProblem]]:
    walk_mod.PROCESSES = procs
    # the inside check as reconcile passes it: picklable
    return walk_odd_tree(top, follow, inside=LinkRules([str(top)]).inside)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> _Started:
    monkeypatch.setattr(walk_mod, "PROCESSES", walk_mod.PROCESSES)  # restored after the test
    return _Started(monkeypatch)


def test_the_walk_by_workers_equals_the_walk_read_in_place(
    tmp_path: Path, started: _Started
) -> None:
    make_odd_tree(tmp_path, per_dir=30, fifo=True)
    for follow in (False, True):
        by_workers = _walk(tmp_path, follow, procs=2)
        in_place = _walk(tmp_path, follow, procs=0)  # threads, the same reads
        assert by_workers == in_place
        paths = [f.path for f in by_workers[0]]
        assert paths == sorted(paths)
        assert f"{tmp_path}/many/d11/f29" in paths and f"{tmp_path}/c/junk.tmp" not in paths
        kinds = {(p.path, p.kind) for p in by_workers[1]}
        assert (f"{tmp_path}/broken", "broken-symlink") in kinds
        assert (f"{tmp_path}/fifo", "special") in kinds
    assert len(started.pools) == 2  # one per walk with workers
    assert all(not pool.broken for pool in started.pools)


def test_no_worker_outlives_its_walk(tmp_path: Path, started: _Started) -> None:
    make_odd_tree(tmp_path, per_dir=30, fifo=True)
    walk_mod.PROCESSES = 2
    it = list_files_recursively(str(tmp_path), inside=LinkRules([str(tmp_path)]).inside)
    assert isinstance(it, types.GeneratorType)
    next(it)
    procs = [w.proc for pool in started.pools for w in pool._workers]
    assert len(procs) == 2 and all(p.poll() is None for p in procs)
    it.close()
    assert all(p.returncode is not None for p in procs)  # ended and waited for


def test_a_worker_dying_mid_walk_costs_nothing_but_speed(tmp_path: Path, started: _Started) -> None:
    make_odd_tree(tmp_path, per_dir=30, fifo=True)
    want = _walk(tmp_path, False, procs=0)
    walk_mod.PROCESSES = 2
    problems: list[WalkProblem] = []
    it = list_files_recursively(
        str(tmp_path),
        ignore=IgnoreRules(["*.tmp"]),
        on_problem=problems.append,
        inside=LinkRules([str(tmp_path)]).inside,
    )
    files = [next(it)]
    for worker in started.pools[0]._workers:
        os.kill(worker.proc.pid, signal.SIGKILL)
    files.extend(it)
    assert (files, problems) == want
    assert started.pools[0].broken


def test_with_no_idle_core_the_walk_reads_in_place(
    tmp_path: Path, started: _Started, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_odd_tree(tmp_path, per_dir=30, fifo=True)
    want = _walk(tmp_path, False, procs=0)
    monkeypatch.setattr(walk_mod, "idle_cores", lambda: 0)
    assert _walk(tmp_path, False, procs=2) == want
    [pool] = started.pools
    assert pool._workers == [] and not pool.broken


def test_idle_cores_counts_the_runnable_tasks_but_this_one() -> None:
    assert walk_procs.idle_cores() <= (os.cpu_count() or 1) - 1


def test_rules_a_worker_cannot_take_keep_the_threads(tmp_path: Path, started: _Started) -> None:
    make_odd_tree(tmp_path, per_dir=30, fifo=True)
    walk_mod.PROCESSES = 2
    files = list(list_files_recursively(str(tmp_path), inside=lambda path: True))  # a closure
    assert started.pools == [] and len(files) > 360


class _Recorder:
    """A pool that reads at once and records what it was given, in order."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, key: str) -> _Done:
        self.submitted.append(key)
        return _Done(key)

    def shutdown(self) -> None:
        pass


class _Done:
    def __init__(self, key: str) -> None:
        self.key = key

    def result(self) -> str:
        return self.key

    def cancel(self) -> bool:
        return False


def test_subdirectories_are_read_ahead_while_later_siblings_fill_the_window() -> None:
    """top has groups g0..g5; entering g0 (whose siblings fill the window of 3), g0's own
    subdirectories are still read ahead, up to a window of their own."""
    pool = _Recorder()
    reader: ReadAhead[str, str] = ReadAhead(
        lambda key: key, pool=lambda: pool, window=3, size=lambda _: 100
    )
    groups = [f"g{i}" for i in range(6)]
    subdirs = [f"g0/d{i}" for i in range(5)]  # the walk hands back the very keys it was given
    reader.enter(groups)
    assert pool.submitted == ["g0", "g1", "g2"]
    assert reader.read(groups[0]) == "g0"
    assert pool.submitted[3:] == ["g3"]
    reader.enter(subdirs)
    assert pool.submitted[4:] == ["g0/d0", "g0/d1", "g0/d2"]  # beside g1..g3, read ahead
    assert reader.read(subdirs[0]) == "g0/d0"
    assert pool.submitted[7:] == ["g0/d3"]
    reader.enter([])  # g0/d0 holds no directory
    reader.leave()
    assert reader.read(subdirs[1]) == "g0/d1"
    assert pool.submitted[8:] == ["g0/d4"]
    reader.close()
