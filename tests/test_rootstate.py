"""Root presence: the pure judgement (a table of facts and records), the probe on real
directories and mounts, and the monitor thread with a probe that hangs (a dead NFS server's
stat): the caller never blocks, the root is ``not-responding`` after the deadline, and comes
back when the probe answers."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from pathlib import Path

import pytest

from assetd.catalog.roots import RootSpec
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
from helpers import wait_until

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
