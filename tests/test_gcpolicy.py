"""The daemon's collector settings (gcpolicy.py), on the interpreter's own collector."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from assetd.gcpolicy import YOUNG, GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def tracked(obj: object) -> bool:
    """``obj`` is in a generation the collector walks (not frozen)."""
    return any(o is obj for o in gc.get_objects())


def test_start_widens_only_the_young_generation() -> None:
    gc.set_threshold(700, 10, 10)
    GcPolicy().start()
    assert gc.get_threshold() == (YOUNG, 10, 10)


def test_the_first_pass_collects_the_garbage_then_freezes_what_lives() -> None:
    policy = GcPolicy()
    garbage, kept = Node(), Node()
    garbage.other = Node()
    garbage.other.other = garbage  # a cycle only the collector frees
    dead = weakref.ref(garbage)
    del garbage
    gc.disable()  # nothing collects it before the pass does
    try:
        assert dead() is not None
        policy.after_pass()
    finally:
        gc.enable()
    assert dead() is None  # freed, not frozen for ever
    assert gc.get_freeze_count() > 0
    assert not tracked(kept)  # a long-lived object is never walked again
    later = Node()
    policy.after_pass()  # later passes leave the collector alone
    assert tracked(later)
