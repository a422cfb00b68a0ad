"""Is a root there? What a probe of its directory sees, and the pure judgement (DESIGN §4, §6).

A root is judged against its *own record* (its device and mount status when it was first seen),
never by an absolute rule: a root recorded as a mount point that is now a plain directory on
its parent's filesystem is ``not-mounted`` (the disk is unplugged, the empty mount point stays);
a root recorded as a plain directory that is now a mount point is ``covered`` (another
filesystem hides its files). :func:`probe` does the I/O (it may hang on a dead network mount:
the daemon runs it off its main loop, with a deadline); :func:`judge` is pure.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_mod
import threading
from collections.abc import Callable
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
PROBE_TIMEOUT = 5.0
"""Seconds a look at a root may take before the root is ``not-responding``."""


class Presence:
    """What a root is, for the daemon: ``present``, or one of the two away states."""

    PRESENT = "present"
    UNAVAILABLE = "unavailable"
    COVERED = "covered"


class Why:
    """Reasons of an ``unavailable`` root (``roots.state_reason``, DESIGN §6)."""

    MISSING = "missing"
    NOT_MOUNTED = "not-mounted"
    PERMISSION_DENIED = "permission-denied"
    NOT_A_DIRECTORY = "not-a-directory"
    NOT_RESPONDING = "not-responding"


# errno of a stat of the root meaning "nothing is at this path" / "we may not look".
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_DENIED = frozenset({errno.EACCES, errno.EPERM})


@dataclass(frozen=True, slots=True)
class RootFacts:
    """What one look at a root's path saw. ``error``: the errno of its stat (None: it worked)."""

    error: int | None = None
    is_dir: bool = False
    device: int | None = None
    inode: int | None = None
    parent_device: int | None = None
    in_mountinfo: bool = False  # the path is a mount point in the mount table
    listable: bool = True  # the directory can be read and searched by this process

    @property
    def is_mount(self) -> bool:
        """A mount point: in the mount table, or on another device than its parent (a btrfs
        subvolume, a mount in another namespace's view)."""
        if self.in_mountinfo:
            return True
        return self.device is not None and self.parent_device not in (None, self.device)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the catalog recorded about a root when it was seen (``roots.device``, ``is_mount``);
    ``device`` None: never seen."""

    device: int | None
    is_mount: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    presence: str
    reason: str | None = None
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the directory when present

    @property
    def present(self) -> bool:
        return self.presence == Presence.PRESENT


NOT_RESPONDING = Verdict(Presence.UNAVAILABLE, Why.NOT_RESPONDING)


def judge(facts: RootFacts, recorded: Recorded) -> Verdict:
    """The root's presence from what a probe saw and what was recorded (pure)."""
    if facts.error is not None:
        if facts.error in _ABSENT:
            return Verdict(Presence.UNAVAILABLE, Why.MISSING)
        if facts.error in _DENIED:
            return Verdict(Presence.UNAVAILABLE, Why.PERMISSION_DENIED)
        return NOT_RESPONDING  # EIO, ESTALE, ETIMEDOUT, EHOSTDOWN...: the filesystem fails
    if not facts.is_dir:
        return Verdict(Presence.UNAVAILABLE, Why.NOT_A_DIRECTORY)
    if recorded.device is not None:
        if recorded.is_mount and not facts.is_mount:
            return Verdict(Presence.UNAVAILABLE, Why.NOT_MOUNTED)
        if not recorded.is_mount and facts.is_mount:
            return Verdict(Presence.COVERED)
    if not facts.listable:
        return Verdict(Presence.UNAVAILABLE, Why.PERMISSION_DENIED)
    identity = (facts.device, facts.inode) if facts.device is not None else None
    return Verdict(Presence.PRESENT, identity=identity)  # type: ignore[arg-type]


_OCTAL = re.compile(r"\\([0-7]{3})")


def mount_points(text: str) -> set[str]:
    """The mount points listed in a ``/proc/self/mountinfo`` text (``\\040`` decoded)."""
    out = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            out.add(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return out


def read_mount_points(path: str = MOUNTINFO) -> set[str] | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return mount_points(f.read())
    except OSError:
        return None


StatFn = Callable[[str], os.stat_result]


def probe(
    path: str,
    *,
    stat: StatFn = os.stat,
    mounts: set[str] | None = None,
    access: Callable[[str, int], bool] = os.access,
) -> RootFacts:
    """Look at ``path`` (I/O; may block on a hung filesystem). ``mounts``: the mount points
    (default: read now)."""
    try:
        st = stat(path)
    except OSError as err:
        return RootFacts(error=err.errno or errno.EIO)
    if not stat_mod.S_ISDIR(st.st_mode):
        return RootFacts(device=st.st_dev, inode=st.st_ino)
    real = os.path.realpath(path)
    try:
        parent_device: int | None = stat(os.path.dirname(real) or "/").st_dev
    except OSError:
        parent_device = None
    if real == "/":
        parent_device = st.st_dev
    table = mounts if mounts is not None else (read_mount_points() or set())
    return RootFacts(
        is_dir=True,
        device=st.st_dev,
        inode=st.st_ino,
        parent_device=parent_device,
        in_mountinfo=real in table and real != "/",
        listable=access(path, os.R_OK | os.X_OK),
    )


def probe_within(path: str, timeout: float) -> RootFacts:
    """:func:`probe` on a helper thread, waiting at most ``timeout`` seconds: a root on a hung
    mount gives ``RootFacts(error=ETIMEDOUT)`` (judged ``not-responding``) and the helper thread
    is left behind (a daemon thread; a stat stuck on a dead server cannot be interrupted)."""
    box: list[RootFacts] = []
    helper = threading.Thread(
        target=lambda: box.append(probe(path)), name="assetd-probe", daemon=True
    )
    helper.start()
    helper.join(timeout)
    return box[0] if box else RootFacts(error=errno.ETIMEDOUT)


def look(path: str, recorded: Recorded, *, stat: StatFn = os.stat) -> tuple[Verdict, RootFacts]:
    """Probe and judge now, on this thread (``scan``, a reconcile)."""
    facts = probe(path, stat=stat)
    return judge(facts, recorded), facts
