"""A hung filesystem for tests: a FUSE mount whose server never answers (DESIGN §8).

No libfuse: the kernel's ``/dev/fuse`` is opened and mounted with ``mount -t fuse -o fd=N``,
and nothing ever reads it, so every stat at or below the mount point blocks, as on a dead NFS
server. Closing the descriptor aborts the connection (the blocked calls fail with ENOTCONN);
the mount is then lazily removed. Skips where /dev/fuse or the mount is refused (not root).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def hung_mount(path: Path) -> Iterator[None]:
    """Mount a FUSE filesystem on ``path`` and never answer it: every stat below it blocks, as
    on a dead NFS server (no libfuse: the kernel's /dev/fuse, mounted with ``fd=``). At the end
    the connection is closed (requests fail with ENOTCONN) and the mount is lazily removed."""
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        pytest.skip(f"no /dev/fuse here: {err}")
    options = f"fd={fd},rootmode=40000,user_id=0,group_id=0"
    proc = subprocess.run(
        ["mount", "-t", "fuse", "-o", options, "assetd-hang", str(path)],
        pass_fds=[fd],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        os.close(fd)
        pytest.skip(f"cannot mount FUSE here: {proc.stderr.strip()}")
    try:
        yield
    finally:
        os.close(fd)
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
