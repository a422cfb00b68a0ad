"""Time seams: the one ``Clock`` alias tests replace, and the one retry :class:`Backoff`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Clock: TypeAlias = Callable[[], float]
"""A monotonic clock in seconds (``time.monotonic``); unit tests pass a fake one."""


class Backoff:
    """Delays between retries: ``first``, then doubling, capped at ``most``; :meth:`reset`
    after a success. Not thread-safe: one owner."""

    __slots__ = ("attempts", "delay", "first", "most")

    def __init__(self, first: float, most: float) -> None:
        if not 0 < first <= most:
            raise ValueError(f"backoff needs 0 < first <= most, got {first} and {most}")
        self.first = first
        self.most = most
        self.delay = 0.0
        """The last delay handed out (0.0: none since the last reset)."""
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next retry (and remember it)."""
        self.delay = next_delay(self.delay, self.first, self.most)
        self.attempts += 1
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0
        self.attempts = 0


def next_delay(previous: float, first: float, most: float) -> float:
    """The delay after ``previous`` (0.0: the first one): the pure rule :class:`Backoff` keeps."""
    return first if previous <= 0 else min(previous * 2, most)
