"""The pairing of a move's halves seen by two roots (live/crossroot.py), on its own: a real
thread releases what found no partner; each root's sink appends to one shared list, as the
roots' sinks share the debouncer's queue."""

from __future__ import annotations

import threading

from assetd.live.changes import Change, Kind
from assetd.live.crossroot import CrossRootPairer, Half, Under
from helpers import wait_until


class Queue:
    def __init__(self) -> None:
        self.got: list[Change] = []
        self.lock = threading.Lock()

    def snapshot(self) -> list[Change]:
        with self.lock:
            return list(self.got)


class RootSink:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def put(self, change: Change) -> bool:
        with self.queue.lock:
            self.queue.got.append(change)
        return True


def moved(src: str, dest: str, is_dir: bool = False) -> Change:
    return Change(Kind.MOVED, src, is_dir, dest)


def test_changes_with_no_half_pass_straight_through() -> None:
    pairer = CrossRootPairer(window=30.0)
    sink = RootSink(Queue())
    items: list[Change | Half] = [Change(Kind.CREATED, "/r0/a"), Change(Kind.MODIFIED, "/r0/b")]
    assert pairer.submit(sink, items) == items
    assert sink.queue.got == []


def test_mv_onto_across_roots_then_rename_keeps_the_kernels_order() -> None:
    """``mv r1/y r0/x; mv r0/x r0/z`` (example 38 of the 500-example run): r0 reads the
    move-in of x and its own x -> z before r1's move-out of y reaches the pairer. The move
    y -> x must still come before x -> z."""
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    r0, r1 = RootSink(q), RootSink(q)
    into = Half(("cookie", 5), False, Change(Kind.CREATED, "/r0/x"))
    assert pairer.submit(r0, [into, moved("/r0/x", "/r0/z")]) == []
    assert q.got == []  # held behind the half
    assert pairer.submit(r1, [Half(("cookie", 5), True, Change(Kind.DELETED, "/r1/y"))]) == []
    assert q.got == [
        moved("/r1/y", "/r0/x"),
        Change(Kind.CREATED, "/r1/y"),
        moved("/r0/x", "/r0/z"),
    ]
    assert pairer.paired == 1
    # nothing held any more: r0's changes pass straight through again
    assert pairer.submit(r0, [Change(Kind.MODIFIED, "/r0/z")]) == [Change(Kind.MODIFIED, "/r0/z")]
    pairer.flush()


def test_a_pair_waits_for_what_the_other_root_saw_before_it() -> None:
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    r0, r1 = RootSink(q), RootSink(q)
    first = Half(("cookie", 1), True, Change(Kind.DELETED, "/r0/a"))
    second = Half(("cookie", 2), True, Change(Kind.DELETED, "/r0/d", True))
    assert pairer.submit(r0, [first, second]) == []
    assert pairer.submit(r1, [Half(("cookie", 1), False, Change(Kind.CREATED, "/r1/b"))]) == []
    assert (
        pairer.submit(r1, [Half(("cookie", 2), False, Change(Kind.CREATED, "/r1/d", True))]) == []
    )
    assert q.got == [
        moved("/r0/a", "/r1/b"),
        Change(Kind.CREATED, "/r0/a"),
        moved("/r0/d", "/r1/d", True),
        Change(Kind.CREATED, "/r0/d", True),
        Change(Kind.CREATED, "/r1/d", True),  # listed: watched in r1 only from the move on
    ]
    pairer.flush()


def test_a_half_alone_goes_out_as_it_was_after_the_window_with_what_followed_it() -> None:
    pairer = CrossRootPairer(window=0.05)
    q = Queue()
    sink = RootSink(q)
    gone, after = Change(Kind.DELETED, "/r0/a"), Change(Kind.CREATED, "/r0/a")
    assert pairer.submit(sink, [Half(("cookie", 1), True, gone), after]) == []
    wait_until(lambda: q.snapshot() == [gone, after], 10, what="the half released")
    # a late partner is a creation alone
    late = Change(Kind.CREATED, "/r1/b")
    assert pairer.submit(RootSink(q), [Half(("cookie", 1), False, late)]) == []
    wait_until(lambda: q.snapshot() == [gone, after, late], 10, what="the late half released")
    assert pairer.paired == 0
    wait_until(lambda: not any(t.name == "assetd-crossroot" for t in threading.enumerate()), 10)


def test_an_ignored_half_lets_its_partner_go_alone_at_once() -> None:
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    gone = Change(Kind.DELETED, "/r0/a")
    key = ("rename", "/r0/a", "/r1/a.tmp", False)
    assert pairer.submit(RootSink(q), [Half(key, True, gone)]) == []
    assert pairer.submit(RootSink(q), [Half(key, False, None)]) == []
    assert q.got == [gone]
    pairer.flush()


def test_a_key_held_twice_pairs_in_order_and_loses_neither() -> None:
    """fanotify's key is (src, dest, is_dir): ``mv a b; mv b a; mv a b`` across two roots
    within the window may hold the same key twice before the other root's handler runs."""
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    r0, r1 = RootSink(q), RootSink(q)
    key = ("rename", "/r0/a", "/r1/b", False)
    back = ("rename", "/r1/b", "/r0/a", False)
    assert (
        pairer.submit(
            r0,
            [
                Half(key, True, Change(Kind.DELETED, "/r0/a")),
                Half(back, False, Change(Kind.CREATED, "/r0/a")),
                Half(key, True, Change(Kind.DELETED, "/r0/a")),
            ],
        )
        == []
    )
    assert (
        pairer.submit(
            r1,
            [
                Half(key, False, Change(Kind.CREATED, "/r1/b")),
                Half(back, True, Change(Kind.DELETED, "/r1/b")),
                Half(key, False, Change(Kind.CREATED, "/r1/b")),
            ],
        )
        == []
    )
    assert [c for c in q.got if c.kind is Kind.MOVED] == [
        moved("/r0/a", "/r1/b"),
        moved("/r1/b", "/r0/a"),
        moved("/r0/a", "/r1/b"),
    ]
    assert pairer.paired == 3
    pairer.flush()


def test_flush_puts_out_everything_held_in_order() -> None:
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    held = Change(Kind.CREATED, "/r1/c")
    after = Change(Kind.MODIFIED, "/r1/c")
    assert pairer.submit(RootSink(q), [Half(("cookie", 2), False, held), after]) == []
    pairer.flush()
    assert q.got == [held, after]


def test_a_move_out_of_a_directory_that_left_for_another_root_takes_its_source_from_the_pair() -> (
    None
):
    """``mv r0/a/b r1/b; mv r1/b/c r0/c2`` (example 455 of the 500-example run): r0 read the
    second move through its watch of ``b``, at no path it could trust; the emitter sends it as
    an :class:`Under` of the first move's cookie, and the pair tells where ``b`` went."""
    pairer = CrossRootPairer(window=30.0)
    q = Queue()
    r0, r1 = RootSink(q), RootSink(q)
    out = Half(("cookie", 4), True, Change(Kind.DELETED, "/r0/a/b", True))
    back = Half(Under(("cookie", 4), "/c"), False, Change(Kind.CREATED, "/r0/c2", True))
    assert pairer.submit(r0, [out, back]) == []
    assert q.got == []  # held behind the first half
    assert (
        pairer.submit(r1, [Half(("cookie", 4), False, Change(Kind.CREATED, "/r1/b", True))]) == []
    )
    assert [c for c in q.got if c.kind is Kind.MOVED] == [
        moved("/r0/a/b", "/r1/b", True),
        moved("/r1/b/c", "/r0/c2", True),
    ]
    assert Change(Kind.CREATED, "/r0/c2", True) in q.got  # listed at its destination
    pairer.flush()


def test_a_move_out_of_a_directory_that_left_every_root_is_a_creation() -> None:
    pairer = CrossRootPairer(window=0.05)
    q = Queue()
    r0 = RootSink(q)
    out = Half(("cookie", 7), True, Change(Kind.DELETED, "/r0/a/b", True))
    back = Half(Under(("cookie", 7), "/c"), False, Change(Kind.CREATED, "/r0/c2"))
    assert pairer.submit(r0, [out, back]) == []
    wait_until(lambda: len(q.snapshot()) == 2, 10, what="both released")
    assert q.snapshot() == [Change(Kind.DELETED, "/r0/a/b", True), Change(Kind.CREATED, "/r0/c2")]
    pairer.flush()
