"""Root presence: the pure judgement (a table of facts and records), the probe on real
directories and mounts, and the monitor thread with a probe that hangs (a dead NFS server's
stat): the caller never blocks, the root is ``not-responding`` after the deadline, and comes
back when the probe answers."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from assetd.catalog.engine import SessionFactory
from assetd.catalog.roots import RootSpec, mark_root_unavailable, register_roots
from assetd.config import RootConfig
from assetd.live.rootkeeper import RootKeeper
from assetd.live.rootstate import RootMonitor
from assetd.rootfacts import (
    Presence,
    Recorded,
    RootFacts,
    Verdict,
    Why,
    judge,
    mount_points,
    probe,
)
from catalog_world import make_world
from helpers import wait_until
from hung_fs import hung_mount

PLAIN = RootFacts(is_dir=True, device=1, inode=2, parent_device=1)
MOUNTED = RootFacts(is_dir=True, device=7, inode=2, parent_device=1, in_mountinfo=True)


@pytest.mark.parametrize(
    ("facts", "record", "expected"),
    [
        (PLAIN, Recorded(1, False), (Presence.PRESENT, None)),
        (MOUNTED, Recorded(7, True), (Presence.PRESENT, None)),
        (MOUNTED, Recorded(9, True), (Presence.PRESENT, None)),  # a remount: a new device
        (PLAIN, Recorded(7, True), (Presence.UNAVAILABLE, Why.NOT_MOUNTED)),
        (MOUNTED, Recorded(1, False), (Presence.COVERED, None)),
        (PLAIN, Recorded(None, False), (Presence.PRESENT, None)),  # never seen: nothing to hold
        (MOUNTED, Recorded(None, False), (Presence.PRESENT, None)),
        (RootFacts(error=errno.ENOENT), Recorded(1, False), (Presence.UNAVAILABLE, Why.MISSING)),
        (
            RootFacts(error=errno.EACCES),
            Recorded(1, False),
            (Presence.UNAVAILABLE, Why.PERMISSION_DENIED),
        ),
        (
            RootFacts(error=errno.EIO),
            Recorded(1, False),
            (Presence.UNAVAILABLE, Why.NOT_RESPONDING),
        ),
        (
            RootFacts(device=1, inode=3),
            Recorded(1, False),
            (Presence.UNAVAILABLE, Why.NOT_A_DIRECTORY),
        ),
        (
            RootFacts(is_dir=True, device=1, inode=2, parent_device=1, listable=False),
            Recorded(1, False),
            (Presence.UNAVAILABLE, Why.PERMISSION_DENIED),
        ),
        # on another device than its parent, though not in the mount table: a mount point
        (
            RootFacts(is_dir=True, device=5, inode=2, parent_device=1),
            Recorded(1, False),
            (Presence.COVERED, None),
        ),
    ],
)
def test_judge(facts: RootFacts, record: Recorded, expected: tuple[str, str | None]) -> None:
    verdict = judge(facts, record)
    assert (verdict.presence, verdict.reason) == expected


def test_mount_points_decode_octal_escapes() -> None:
    text = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw\n"
    assert mount_points(text) == {"/mnt/my disk"}


def test_probe_on_real_paths(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    facts = probe(str(d), mounts=set())
    assert facts.is_dir and not facts.is_mount and facts.error is None
    assert probe(str(tmp_path / "nothing"), mounts=set()).error == errno.ENOENT
    (tmp_path / "f").write_bytes(b"")
    assert not probe(str(tmp_path / "f"), mounts=set()).is_dir


def test_probe_sees_a_real_tmpfs_mount(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], check=False)
    if proc.returncode != 0:
        pytest.skip("mount refused here")
    try:
        facts = probe(str(d))
        assert facts.in_mountinfo and facts.is_mount
    finally:
        subprocess.run(["umount", str(d)], check=False)
    assert not probe(str(d)).is_mount


def _spec(root_id: int, path: str) -> RootSpec:
    return RootSpec(id=root_id, name=f"r{root_id}", path=path, device=None)


def test_a_hung_probe_never_blocks_and_makes_the_root_not_responding(tmp_path: Path) -> None:
    """The seam: the probe of one root blocks until released (a stat on a dead mount)."""
    hung, ok = tmp_path / "hung", tmp_path / "ok"
    hung.mkdir()
    ok.mkdir()
    release = threading.Event()
    calls = {"hung": 0}
    changes = threading.Event()

    def blocking_probe(path: str, mounts: set[str] | None) -> RootFacts:
        if path == str(hung):
            calls["hung"] += 1
            release.wait(30)
        return probe(path, mounts=mounts)

    monitor = RootMonitor(
        [_spec(1, str(hung)), _spec(2, str(ok))],
        changes.set,
        probe=blocking_probe,
        timeout=0.3,
        interval=0.05,
    )
    monitor.start()
    try:
        wait_until(
            lambda: monitor.verdicts().get(1) == Verdict(Presence.UNAVAILABLE, Why.NOT_RESPONDING),
            5,
        )
        assert monitor.verdicts()[2].present  # the other root is judged all along
        assert calls["hung"] == 1  # no pile of stuck probes: one at a time per root
        assert changes.is_set()
        release.set()
        wait_until(lambda: monitor.verdicts()[1].present, 5, what="back when it answers")
    finally:
        release.set()
        monitor.stop()


def test_check_now_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    release = threading.Event()

    def blocking_probe(path: str, mounts: set[str] | None) -> RootFacts:
        release.wait(30)
        return probe(path, mounts=mounts)

    monitor = RootMonitor(
        [_spec(1, str(tmp_path))], lambda: None, probe=blocking_probe, timeout=0.2
    )
    try:
        verdicts = monitor.check_now()
        assert verdicts[1].reason == Why.NOT_RESPONDING
    finally:
        release.set()
        monitor.stop()


def test_a_mount_wakes_the_monitor_at_once(tmp_path: Path) -> None:
    """interval is 30 s: only the mount table's POLLPRI can bring the verdict within 2 s."""
    d = tmp_path / "plain"
    d.mkdir()
    facts = probe(str(d), mounts=set())
    spec = RootSpec(id=1, name="plain", path=str(d), device=facts.device, is_mount=False)
    monitor = RootMonitor([spec], lambda: None, interval=30.0)
    monitor.start()
    mounted = False
    try:
        wait_until(lambda: 1 in monitor.verdicts(), 5, what="first verdict")
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], check=False
        )
        if proc.returncode != 0:
            pytest.skip("mount refused here")
        mounted = True
        wait_until(lambda: monitor.verdicts()[1].presence == Presence.COVERED, 2, what="covered")
    finally:
        if mounted:
            subprocess.run(["umount", str(d)], check=False)
        monitor.stop()
    assert os.path.isdir(d)


# --- the keeper on a real catalog: a hung root never blocks the caller --------------------


def test_keeper_marks_a_hung_root_unavailable_without_blocking(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """The main loop's view: tick() returns at once while the root's stat hangs; after the
    deadline the root is unavailable (not-responding), its rows root-unavailable, and when the
    stat answers again the root is back and reconciled."""
    world = make_world(sessions, tmp_path / "lib")
    world.write("a.bin")
    world.scan()
    hang = threading.Event()
    release = threading.Event()

    def probe_seam(path: str, mounts: set[str] | None) -> RootFacts:
        if hang.is_set():
            release.wait(30)
        return probe(path, mounts=mounts)

    watched: list[str] = []
    reconciles: list[tuple[str, int]] = []
    keeper = RootKeeper(
        sessions,
        RootMonitor([world.root], lambda: None, probe=probe_seam, timeout=0.3, interval=0.05),
        watch=lambda r: watched.append(r.name),
        unwatch=lambda name: None,
        reconcile=lambda why, root_id: reconciles.append((why, root_id)),
        bump=lambda root, why: None,
    )
    roots = keeper.start([world.root])
    try:
        assert keeper.away == {}
        hang.set()
        durations: list[float] = []

        def tick() -> bool:
            nonlocal roots
            started = time.monotonic()
            roots = keeper.tick(roots)  # what the main loop calls every tick
            durations.append(time.monotonic() - started)
            return world.root.id in keeper.away

        wait_until(tick, 5, interval=0.02, what="not-responding after the deadline")
        assert max(durations) < 0.2  # never waited for the hung probe
        assert keeper.away[world.root.id].reason == Why.NOT_RESPONDING
        state = world.state("a.bin")
        assert state is not None and (state["is_missing"], state["state_reason"]) == (
            True,
            "root-unavailable",
        )
        hang.clear()
        release.set()
        wait_until(lambda: not tick(), 5, interval=0.02, what="back once the stat answers")
        assert reconciles == [("root back", world.root.id)] and watched == ["lib"]
    finally:
        release.set()
        keeper.monitor.stop()


# --- registration decides, never overwrites -------------------------------------------------


def _mount_tmpfs(path: Path) -> None:
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=False
    )
    if proc.returncode != 0:
        pytest.skip("mount refused here")


def test_registration_keeps_the_record_of_a_root_with_files_and_adopts_an_empty_one(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """A plain root with files, now covered: the record stays (the files are hidden, not gone).
    An empty plain root on which a disk was mounted since: nothing is hidden, the mount is it."""
    full = make_world(sessions, tmp_path / "full")
    full.write("a.bin")
    full.scan()
    empty = make_world(sessions, tmp_path / "empty", name="empty")
    assert not full.root.is_mount and not empty.root.is_mount
    _mount_tmpfs(full.dir)
    try:
        _mount_tmpfs(empty.dir)
        try:
            configs = [
                RootConfig(name="lib", path=str(full.dir)),
                RootConfig(name="empty", path=str(empty.dir)),
            ]
            with sessions() as s, s.begin():
                specs = {r.name: r for r in register_roots(s, "host-a", configs)}
            assert (specs["lib"].device, specs["lib"].is_mount) == (full.root.device, False)
            assert specs["empty"].is_mount and specs["empty"].device != empty.root.device
        finally:
            subprocess.run(["umount", str(empty.dir)], check=False)
    finally:
        subprocess.run(["umount", str(full.dir)], check=False)


def test_registration_of_a_hung_root_is_bounded(
    sessions: SessionFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root on a filesystem that never answers: registration gives up on it after the probe
    timeout (recording nothing), instead of hanging the daemon's start."""
    import assetd.catalog.roots as roots_module

    monkeypatch.setattr(roots_module, "PROBE_TIMEOUT", 0.5)
    hung = tmp_path / "nfs"
    hung.mkdir()
    with hung_mount(hung):
        started = time.monotonic()
        with sessions() as s, s.begin():
            [spec] = register_roots(s, "host-a", [RootConfig(name="nfs", path=str(hung))])
        assert time.monotonic() - started < 3
        assert spec.device is None  # nothing learnt: judged later, off the main loop
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "assetd-probe"],
        5,
        what="the stuck probe ends once the connection is aborted",
    )


def test_a_root_a_pass_found_away_comes_back_though_the_monitor_never_saw_it_go(
    sessions: SessionFactory, tmp_path: Path
) -> None:
    """The start-up reconcile can find a root gone (and mark its rows root-unavailable) between
    two of the monitor's probes; if the root is back before the next probe, the monitor never
    sees a change. The keeper must still bring it back: state, watch and a reconcile."""
    world = make_world(sessions, tmp_path / "lib")
    world.write("a.bin")
    world.scan()
    watched: list[str] = []
    unwatched: list[str] = []
    reconciles: list[tuple[str, int]] = []
    backs: list[str] = []
    keeper = RootKeeper(
        sessions,
        RootMonitor([world.root], lambda: None, interval=0.05),
        watch=lambda r: watched.append(r.name),
        unwatch=lambda name: unwatched.append(name),
        reconcile=lambda why, root_id: reconciles.append((why, root_id)),
        bump=lambda root, why: None,
        on_back=lambda r: backs.append(r.name),  # the daemon's hasher retries its failed reads
    )
    roots = keeper.start([world.root])
    try:
        with sessions() as s, s.begin():  # what the pass did while the root was briefly gone
            mark_root_unavailable(s, world.root, "missing")
        keeper.note_away([world.root.name])  # from the reconcile thread: never blocks
        roots = keeper.tick(roots)
        assert unwatched == [world.root.name]

        def back() -> bool:
            nonlocal roots
            roots = keeper.tick(roots)
            return bool(reconciles)

        wait_until(back, 5, interval=0.02, what="the root back and reconciled")
        assert world.root.id not in keeper.away
        assert watched[-1] == world.root.name
        assert backs == [world.root.name]
        with sessions() as s:
            state = s.execute(text("SELECT state FROM roots")).scalar_one()
        assert state == "watching"
    finally:
        keeper.monitor.stop(2.0)
