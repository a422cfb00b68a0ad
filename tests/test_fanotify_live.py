"""The fanotify backend on the real kernel: the core live cases of test_watch.py on it, and the
cases inotify gets wrong or cannot do (skipped with the reason where fanotify is unavailable)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import test_watch
from assetd.fsutil import IgnoreRules
from assetd.live.backend import fanotify_unavailable
from assetd.live.changes import Change, Kind
from assetd.live.fanotify_emitter import group_count
from test_watch import IGNORE, Live

C, D, M, MV = Kind.CREATED, Kind.DELETED, Kind.MODIFIED, Kind.MOVED


def _why_not(path: str) -> str | None:
    return fanotify_unavailable(path)


@pytest.fixture
def fan(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    why = _why_not(str(tmp_path))
    if why is not None:
        pytest.skip(f"fanotify unavailable here: {why}")
    made: list[Live] = []

    def make(root: Path | None = None, **kwargs: object) -> Live:
        item = Live(root or tmp_path / "root", backend="fanotify", **kwargs)  # type: ignore[arg-type]
        made.append(item)
        item.watcher.start()
        return item

    yield make
    for item in made:
        assert item.watcher.stop()
    assert group_count() == 0


def test_file_changes_arrive(fan: Callable[..., Live]) -> None:
    test_watch.test_file_changes_arrive(fan)


def test_directory_changes_and_deletes_inside_subdirectories_arrive(
    fan: Callable[..., Live],
) -> None:
    test_watch.test_directory_changes_and_deletes_inside_subdirectories_arrive(fan)


def test_ignored_paths_are_not_reported(fan: Callable[..., Live]) -> None:
    test_watch.test_ignored_paths_are_not_reported(fan)
