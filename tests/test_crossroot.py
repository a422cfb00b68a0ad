"""The pairing of a move's halves seen by two roots (live/crossroot.py), on its own: a real
thread releases what found no partner, a list stands for each root's queue."""

from __future__ import annotations

import threading

from assetd.live.changes import Change, Kind
from assetd.live.crossroot import CrossRootPairer
from helpers import wait_until


class ListSink:
    def __init__(self) -> None:
        self.got: list[Change] = []
        self.lock = threading.Lock()

    def put(self, change: Change) -> bool:
        with self.lock:
            self.got.append(change)
        return True


def test_two_halves_in_either_order_make_one_move_and_a_look_at_both_ends() -> None:
    pairer = CrossRootPairer(window=30.0)
    r0, r1 = ListSink(), ListSink()
    out = Change(Kind.DELETED, "/r0/a")
    into = Change(Kind.CREATED, "/r1/b")
    assert pairer.offer(("cookie", 7), True, out, r0) == []
    got = pairer.offer(("cookie", 7), False, into, r1)
    assert got == [
        Change(Kind.MOVED, "/r0/a", False, "/r1/b"),
        Change(Kind.CREATED, "/r0/a"),
        Change(Kind.MODIFIED, "/r1/b"),
    ]
    assert pairer.offer(("cookie", 8), False, Change(Kind.CREATED, "/r1/d", True), r1) == []
    got = pairer.offer(("cookie", 8), True, Change(Kind.DELETED, "/r0/d", True), r0)
    assert got == [Change(Kind.MOVED, "/r0/d", True, "/r1/d"), Change(Kind.CREATED, "/r0/d", True)]
    assert pairer.paired == 2
    pairer.flush()
    assert r0.got == [] and r1.got == []


def test_a_half_alone_is_released_as_it_was_after_the_window() -> None:
    pairer = CrossRootPairer(window=0.05)
    sink = ListSink()
    gone = Change(Kind.DELETED, "/r0/a")
    assert pairer.offer(("cookie", 1), True, gone, sink) == []
    wait_until(lambda: sink.got == [gone], 10, what="the half released")
    # a late partner is a creation, not a move
    late = Change(Kind.CREATED, "/r1/b")
    assert pairer.offer(("cookie", 1), False, late, sink) == []
    wait_until(lambda: sink.got == [gone, late], 10, what="the late half released")
    assert pairer.paired == 0


def test_an_ignored_half_releases_its_partner_at_once_and_flush_releases_all() -> None:
    pairer = CrossRootPairer(window=30.0)
    sink = ListSink()
    gone = Change(Kind.DELETED, "/r0/a")
    assert pairer.offer(("rename", "/r0/a", "/r1/a.tmp", False), True, gone, sink) == []
    assert pairer.offer(("rename", "/r0/a", "/r1/a.tmp", False), False, None, sink) == [gone]
    held = Change(Kind.CREATED, "/r1/c")
    assert pairer.offer(("cookie", 2), False, held, sink) == []
    pairer.flush()
    assert sink.got == [held]


def test_a_key_held_twice_pairs_in_order_and_loses_neither() -> None:
    """fanotify's key is (src, dest, is_dir): ``mv a b; mv b a; mv a b`` across two roots
    within the window may hold the same key twice before the other root's handler runs."""
    pairer = CrossRootPairer(window=30.0)
    sink = ListSink()
    key = ("rename", "/r0/a", "/r1/b", False)
    first, second = Change(Kind.DELETED, "/r0/a"), Change(Kind.DELETED, "/r0/a")
    assert pairer.offer(key, True, first, sink) == []
    assert pairer.offer(key, True, second, sink) == []
    got = pairer.offer(key, False, Change(Kind.CREATED, "/r1/b"), sink)
    assert got[0] == Change(Kind.MOVED, "/r0/a", False, "/r1/b")
    pairer.flush()
    assert sink.got == [second]
