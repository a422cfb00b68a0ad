"""Running ``python -m assetd`` as the unprivileged user ``nobody`` (DESIGN §8).

Tests run as root, for whom permissions mean nothing, so permission cases run assetd in a
subprocess under ``setpriv --reuid=nobody --regid=nogroup --clear-groups``. Everything that
process touches lives in a world-readable directory made under /tmp (pytest's own temporary
directories may sit below a 0700 parent).

This interpreter's packages may lie where nobody cannot go (here: under /root, mode 0700), so
the few packages assetd imports are hard-linked (copied across filesystems) into that directory
and put on ``PYTHONPATH``. A test skips, saying why, when setpriv is missing, when not running as
root, or when nobody still cannot import assetd.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import assetd

# What `python -m assetd` imports for the SQLite commands (psycopg only for PostgreSQL URLs).
DEPENDENCIES = (
    "sqlalchemy",
    "alembic",
    "mako",
    "markupsafe",
    "structlog",
    "typing_extensions",
    "blake3",  # assetd.commands.hash imports assetd.hashing.run
    "watchdog",  # `assetd run`
)
NOBODY_UID = 65534
NOGROUP_GID = 65534


@dataclass(frozen=True)
class Nobody:
    """A world-readable scratch directory and a way to run assetd there as nobody."""

    base: Path
    env: dict[str, str]
    command: tuple[str, ...]

    def assetd(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m assetd ARGS`` as nobody in ``base``; skip if it cannot even start."""
        proc = subprocess.run(
            [*self.command, *args],
            env=self.env,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if "ModuleNotFoundError" in proc.stderr or "ImportError" in proc.stderr:
            pytest.skip(f"nobody cannot import assetd here: {proc.stderr.strip()[-300:]}")
        return proc


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_dependencies(site: Path) -> None:
    site.mkdir()
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None:
            continue
        if spec.submodule_search_locations:
            src = next(iter(spec.submodule_search_locations))
            shutil.copytree(src, site / name, copy_function=_link)
        elif spec.origin:
            _link(spec.origin, str(site / os.path.basename(spec.origin)))


@contextlib.contextmanager
def nobody() -> Iterator[Nobody]:
    """A :class:`Nobody` whose directory is removed afterwards (whatever modes were left)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is missing: cannot drop to an unprivileged user")
    if os.geteuid() != 0:
        pytest.skip("not root: cannot switch to nobody")
    base = Path(tempfile.mkdtemp(prefix="assetd-nobody-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        site = base / "site"
        _link_dependencies(site)
        home = base / "home"
        home.mkdir(mode=0o755)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{Path(assetd.__file__).parent.parent}{os.pathsep}{site}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "LANG": "C.UTF-8",
        }
        drop = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
        yield Nobody(base, env, (*drop, sys.executable, "-m", "assetd"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def give_to_nobody(path: Path) -> None:
    """chown -R nobody:nogroup (a catalog nobody must write)."""
    for dirpath, _dirs, files in os.walk(path):
        os.chown(dirpath, NOBODY_UID, NOGROUP_GID)
        for name in files:
            os.chown(os.path.join(dirpath, name), NOBODY_UID, NOGROUP_GID)
